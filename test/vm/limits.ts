// The VM image of the line-limit suite (its 2 KB encrypted lines want heap of their own), the server list and board reports (moved here to keep the shared image's functions well under the 64 KB section cap).
import { limitsSuite } from "../shared/limits.cases.js"
import { serversSuite } from "../shared/servers.cases.js"
import { reportSuite } from "../shared/report.cases.js"
import { runSuites } from "./run.js"

await runSuites([limitsSuite, serversSuite, reportSuite])
