// One Node devs-iot Client in its own process: the client end of the
// latency, throughput and recovery benchmarks.
import { Client, openState } from "../../src/server/index.js"
import { Counter, roundTrips, sendMany, sendTimed, type SendMode } from "./ops.js"
import { serveRequests } from "../lib/rpc.js"
import { summarize } from "../lib/stats.js"
import { PAYLOAD } from "../lib/payload.js"

let client: Client | undefined
let counter: Counter | undefined

function the(): Client {
    if (!client) throw new Error("not connected")
    return client
}

serveRequests(
    {
        ping: () => "pong",
        // Answers the time from start() to the link up (ms).
        async connect(a: { id: string; port: number; timeout?: number; window?: number; key?: string; encrypt?: boolean; state?: string; stateSync?: boolean }) {
            const keyed = a.key ? { key: a.key, encrypt: a.encrypt ?? false } : {}
            const state = a.state ? await openState(a.state, { sync: a.stateSync === true }) : undefined
            client = new Client({ id: a.id, host: "127.0.0.1", port: a.port, timeout: a.timeout ?? 2000, ...(a.window ? { window: a.window } : {}), ...keyed, state })
            counter = new Counter(client, a.id)
            const t0 = performance.now()
            client.start()
            await client.connected()
            return performance.now() - t0
        },
        rtt: (a: { n: number; warmup: number }) => roundTrips(the(), a.n, a.warmup),
        // qos round trips one after another for `ms`.
        async rttFor(a: { ms: number }) {
            const samples: number[] = []
            const end = performance.now() + a.ms
            while (performance.now() < end) {
                const t0 = performance.now()
                await the().write(PAYLOAD)
                samples.push(performance.now() - t0)
            }
            return summarize(samples)
        },
        send: (a: { n: number; mode: SendMode }) => sendMany(the(), a.n, a.mode),
        sendTimed: (a: { n: number; mode: SendMode; cold?: number }) => sendTimed(the(), a.n, a.mode, a.cold),
        stats: () => the().stats,
        // Starts a qos write and answers at once (recovery times its arrival at the server).
        write(a: { line: string }) {
            void the()
                .write(a.line)
                .catch(() => {})
            return null
        },
        arm(a: { n: number; batch?: boolean }) {
            counter!.arm(a.n, a.batch)
            return null
        },
        finished: () => counter!.finished(),
        async close() {
            await client?.close()
            return null
        },
    },
    Number(process.argv[2])
)

process.on("SIGTERM", () => {
    void (client?.close() ?? Promise.resolve()).finally(() => process.exit(0))
})
