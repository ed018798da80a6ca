// Connect storm: 1,000 Node clients (one process) started in the same tick
// against a fresh server. Time until every one has connected, how many had a
// connect fail and retry, and how many never came up within 30 s (gave up:
// should be none, the client retries forever).
import { startWorker, withWorkers } from "../lib/proc.js"
import type { Context, SectionResult } from "../lib/context.js"
import { int, met, ms } from "../lib/table.js"
import { listenOverflows } from "../lib/machine.js"

const CLIENTS = 1000
const LIMIT_MS = 30000
export const STORM_TARGET_MS = 5000

export interface StormRun {
    allUpMs: number // NaN when some never came up
    upMedianMs: number
    upP90Ms: number
    listenOverflows: number // the kernel's count during the run (the whole machine's)
    up: number
    neverUp: number
    retried: number
    serverUp: number
}

export async function storm(ctx: Context): Promise<SectionResult> {
    const reps = ctx.quick ? 1 : 3
    const runs: StormRun[] = []
    for (let i = 0; i < reps; i++) {
        ctx.log(`storm: ${CLIENTS} clients at once, run ${i + 1} of ${reps}`)
        runs.push(
            await withWorkers(async (keep) => {
                const server = keep(await startWorker("server", 120000))
                const clients = keep(await startWorker("idle", 120000))
                const { port } = await server.call<{ port: number }>("listen")
                const overflows = listenOverflows()
                const r = await clients.call<Omit<StormRun, "serverUp" | "listenOverflows">>(
                    "start",
                    { port, prefix: "s", count: CLIENTS, timeout: 2000, batch: CLIENTS, paced: false, limitMs: LIMIT_MS },
                    LIMIT_MS + 10000
                )
                const u = await server.call<{ up: number }>("usage")
                return { ...r, serverUp: u.up, listenOverflows: listenOverflows() - overflows }
            })
        )
    }
    const worst = Math.max(...runs.map((r) => (r.neverUp > 0 ? Infinity : r.allUpMs)))
    const neverUp = runs.reduce((s, r) => s + r.neverUp, 0)
    return {
        name: "storm",
        data: { clients: CLIENTS, limitMs: LIMIT_MS, runs },
        tables: [
            {
                title: `Connect storm: ${int(CLIENTS)} clients started at once (${reps} run${reps > 1 ? "s" : ""})`,
                head: ["run", "all connected after (ms)", "half / 90 % connected after (ms)", "clients that retried a connect", `gave up (not up after ${LIMIT_MS / 1000} s)`, "listen queue overflows", "target", "met"],
                rows: runs.map((r, i) => [
                    String(i + 1),
                    r.neverUp > 0 ? "never" : ms(r.allUpMs),
                    `${ms(r.upMedianMs)} / ${ms(r.upP90Ms)}`,
                    int(r.retried),
                    int(r.neverUp),
                    int(r.listenOverflows),
                    i === 0 ? `all within ${STORM_TARGET_MS / 1000} s, none gave up` : "",
                    i === 0 ? met(worst <= STORM_TARGET_MS && neverUp === 0) : "",
                ]),
            },
        ],
    }
}
