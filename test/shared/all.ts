// Every shared suite, in the order both runners use.
import { codecSuite } from "./codec.cases.js"
import { framerSuite } from "./framer.cases.js"
import { dedupSuite } from "./dedup.cases.js"
import { linkSuite } from "./link.cases.js"
import { pairSuite } from "./pair.cases.js"
import { watchdogSuite } from "./watchdog.cases.js"
import { authSuite } from "./auth.cases.js"
import { limitsSuite } from "./limits.cases.js"
import { Suite } from "./harness.js"

// The pair suite first: its 300-line cases need the VM's heap before the
// other suites have fragmented it (after them it ran out of memory).
export const suites: Suite[] = [pairSuite, codecSuite, framerSuite, dedupSuite, linkSuite, authSuite, watchdogSuite, limitsSuite]
