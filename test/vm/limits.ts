// The VM image of the line-limit suite (its 2 KB encrypted lines want heap of their own) and the server list.
import { limitsSuite } from "../shared/limits.cases.js"
import { serversSuite } from "../shared/servers.cases.js"
import { runSuites } from "./run.js"

await runSuites([limitsSuite, serversSuite])
