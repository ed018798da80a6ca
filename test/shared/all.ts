// Every shared suite, in the order both runners use.
import { codecSuite } from "./codec.cases.js"
import { framerSuite } from "./framer.cases.js"
import { dedupSuite } from "./dedup.cases.js"
import { linkSuite } from "./link.cases.js"
import { pairSuite } from "./pair.cases.js"
import { watchdogSuite } from "./watchdog.cases.js"
import { authSuite } from "./auth.cases.js"
import { keysSuite } from "./keys.cases.js"
import { reportSuite } from "./report.cases.js"
import { limitsSuite } from "./limits.cases.js"
import { serversSuite } from "./servers.cases.js"
import { Suite } from "./harness.js"

export const suites: Suite[] = [codecSuite, framerSuite, dedupSuite, linkSuite, authSuite, keysSuite, pairSuite, watchdogSuite, reportSuite, limitsSuite, serversSuite]
