// The VM image of the shared suites other than the link (test/vm/link.ts), line-limit and report (test/vm/limits.ts) ones.
import { codecSuite } from "../shared/codec.cases.js"
import { framerSuite } from "../shared/framer.cases.js"
import { dedupSuite } from "../shared/dedup.cases.js"
import { watchdogSuite } from "../shared/watchdog.cases.js"
import { authSuite } from "../shared/auth.cases.js"
import { keysSuite } from "../shared/keys.cases.js"
import { runSuites } from "./run.js"

await runSuites([codecSuite, framerSuite, dedupSuite, authSuite, keysSuite, watchdogSuite])
