// Recovery: after a fault clears, how long until the next message is
// delivered to the server's application. A qos write is made during the
// fault (right after it for a cut) and timed from the moment the fault
// clears to its arrival. Node client, timeout 2000 ms (the default); the
// faults come from the tests' fault proxy (test/kit/proxy.ts), run
// here in the runner's process, between a client process and a server
// process.
import { FaultProxy } from "../../test/kit/proxy.js"
import { startWorker, type Worker } from "../lib/proc.js"
import { sleep, within, type Context, type SectionResult } from "../lib/context.js"
import { wallMs } from "../lib/rpc.js"
import { summarize, type Summary } from "../lib/stats.js"
import { int, met } from "../lib/table.js"

const TIMEOUT = 2000
const STALL_MS = 3000 // longer than the timeout: both ends see an outage
const REFUSE_MS = 3000
// Between faults: a link counts as up, and resets the client's back-off,
// once it stayed up for `timeout`. Faults closer together are a flapping
// link, which backs off on purpose (src/shared/backoff.ts).
const SETTLE_MS = TIMEOUT + 300
export const CUT_TARGET_MS = 1000

type Fault = "cut-fin" | "cut-rst" | "stall" | "refuse" | "restart"
const FAULTS: Array<{ key: Fault; label: string }> = [
    { key: "cut-fin", label: "cut (both sockets closed, FIN)" },
    { key: "cut-rst", label: "cut (both sockets reset, RST)" },
    { key: "stall", label: `stall ${STALL_MS / 1000} s (nothing forwarded, sockets open), then cleared` },
    { key: "refuse", label: `cut, then connections refused for ${REFUSE_MS / 1000} s` },
    { key: "restart", label: "server restart (SIGTERM, a new server process on the same port)" },
]

export async function recovery(ctx: Context): Promise<SectionResult> {
    const reps = ctx.quick ? 1 : 5
    const workers: Worker[] = []
    let proxy: FaultProxy | undefined
    const arrivals = new Map<string, (at: number) => void>()
    const watch = (w: Worker) => {
        workers.push(w)
        w.onEvent((e) => {
            if (e.event === "line") arrivals.get(e["line"] as string)?.(e["at"] as number)
        })
        return w
    }
    const samples: Record<Fault, number[]> = { "cut-fin": [], "cut-rst": [], stall: [], refuse: [], restart: [] }
    try {
        let server = watch(await startWorker("server", 600000))
        const { port } = await server.call<{ port: number }>("listen", { timeout: TIMEOUT })
        proxy = new FaultProxy(port)
        await proxy.listen()
        const viaProxy = watch(await startWorker("client", 600000))
        const direct = watch(await startWorker("client", 600000))
        await viaProxy.call("connect", { id: "rp", port: proxy.port, timeout: TIMEOUT })
        await direct.call("connect", { id: "rd", port, timeout: TIMEOUT })

        let k = 0
        // Injects a fault, writes a probe line, clears the fault; returns the
        // ms from clearing to the probe's arrival at the server's application.
        const probe = async (client: Worker, inject: () => Promise<void> | void, clear: () => Promise<void> | void): Promise<number> => {
            const line = `probe ${++k}`
            const got = new Promise<number>((resolve) => arrivals.set(line, resolve))
            await inject()
            await client.call("write", { line })
            await clear()
            const cleared = wallMs()
            const at = await within(got, 20000, `${line} delivered`)
            arrivals.delete(line)
            return at - cleared
        }
        const p = proxy
        // Both links up and warm before anything counts.
        await probe(viaProxy, () => {}, () => {})
        await probe(direct, () => {}, () => {})
        for (let rep = 0; rep < reps; rep++) {
            ctx.log(`recovery: round ${rep + 1} of ${reps}`)
            samples["cut-fin"].push(await probe(viaProxy, () => p.cut("fin"), () => {}))
            await sleep(SETTLE_MS)
            samples["cut-rst"].push(await probe(viaProxy, () => p.cut("rst"), () => {}))
            await sleep(SETTLE_MS)
            samples.stall.push(await probe(viaProxy, () => p.stall(true), async () => (await sleep(STALL_MS), p.stall(false))))
            await sleep(SETTLE_MS)
            samples.refuse.push(
                await probe(
                    viaProxy,
                    () => (p.refuse(true), p.cut("rst")),
                    async () => (await sleep(REFUSE_MS), p.refuse(false))
                )
            )
            await sleep(SETTLE_MS)
            samples.restart.push(
                await probe(
                    direct,
                    () => server.stop(),
                    async () => {
                        server = watch(await startWorker("server", 600000))
                        await server.call("listen", { port, timeout: TIMEOUT })
                    }
                )
            )
            await sleep(SETTLE_MS)
        }
    } finally {
        await proxy?.close()
        await Promise.all(workers.map((w) => w.stop()))
    }
    const stats = Object.fromEntries(FAULTS.map((f) => [f.key, summarize(samples[f.key])])) as Record<Fault, Summary>
    return {
        name: "recovery",
        data: { timeout: TIMEOUT, reps, samples, stats },
        tables: [
            {
                title: `Recovery: fault cleared -> next message delivered (ms; Node client, timeout ${TIMEOUT} ms, ${reps} of each)`,
                head: ["fault", "median", "max", "target", "met"],
                rows: FAULTS.map((f) => {
                    const s = stats[f.key]
                    const cut = f.key === "cut-fin" || f.key === "cut-rst"
                    return [f.label, int(s.median), int(s.max), cut ? `<= ${int(CUT_TARGET_MS)}` : "", cut ? met(s.max <= CUT_TARGET_MS) : ""]
                }),
            },
        ],
    }
}
