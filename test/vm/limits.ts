// The VM image of the line-limit suite (its 2 KB encrypted lines want heap of their own).
import { limitsSuite } from "../shared/limits.cases.js"
import { runSuites } from "./run.js"

await runSuites([limitsSuite])
