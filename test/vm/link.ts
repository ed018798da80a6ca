// The VM image of the link suites: one link, and two links over a faulty network.
import { linkSuite } from "../shared/link.cases.js"
import { pairSuite } from "../shared/pair.cases.js"
import { runSuites } from "./run.js"

await runSuites([linkSuite, pairSuite])
