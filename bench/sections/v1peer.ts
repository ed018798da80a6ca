// A peer that behaves like the original micropython-iot client (v1) beside a
// devs-iot Node client, on one server in the same run: qos writes without
// wait, 64 in flight, each way. Lines/s (first write to last line read by the
// receiving application), each write's time from call to ACK, and what went
// wrong on the wire. The server sends a v1 peer at most V1_WINDOW (20) lines
// un-ACKed, whatever its 64 writes outstanding.
import { startWorker, withWorkers, type Worker } from "../lib/proc.js"
import type { Context, SectionResult } from "../lib/context.js"
import type { SendMode } from "../workers/ops.js"
import type { Summary } from "../lib/stats.js"
import { int, ms } from "../lib/table.js"

const MODE: SendMode = { qos: true, wait: false, inflight: 64 }
const COLD = 200 // writes timed on a fresh link, before anything warms up

interface Timed {
    start: number
    ms: number
    latency: Summary
    cold: Summary | undefined
}

export interface PeerFigures {
    up: { perSec: number; latency: Summary } // client -> server
    down: { perSec: number; latency: Summary } // server -> client
    coldMaxMs: number // the slowest ACK of the first COLD writes on a fresh link
    clientResent: number
    serverResent: number
    clientTrouble: number // v1: queue overflows + duplicates + outages; devs-iot: duplicates + dropped
}

export interface V1PeerData {
    n: number
    v2: PeerFigures
    v1: PeerFigures
}

async function run(ctx: Context, server: Worker, port: number, client: Worker, id: string, n: number, isV1: boolean): Promise<PeerFigures> {
    await client.call("connect", { id, port })
    await server.call("waitFor", { id })
    await server.call("arm", { id, n: COLD })
    const cold = await client.call<Timed>("sendTimed", { n: COLD, mode: MODE, cold: COLD }, 60000)
    await server.call("finished", { id }, 60000)
    // Warm both ends up (JIT) before anything counts.
    await server.call("arm", { id, n: 2000 })
    await client.call<Timed>("sendTimed", { n: 2000, mode: MODE }, 60000)
    await server.call("finished", { id }, 60000)
    ctx.log(`v1peer: ${isV1 ? "v1 peer" : "devs-iot client"}, ${n} lines each way`)
    await server.call("arm", { id, n })
    const up = await client.call<Timed>("sendTimed", { n, mode: MODE }, 300000)
    const upEnd = await server.call<number>("finished", { id }, 300000)
    await client.call("arm", { n })
    const down = await server.call<Timed>("sendTimed", { id, n, mode: MODE }, 300000)
    const downEnd = await client.call<number>("finished", {}, 300000)
    const cs = await client.call<{ resends: number; overflows: number; drops: number; resent: number; dropped: number; duplicates: number }>("stats")
    const ss = await server.call<{ resent: number }>("stats", { id })
    return {
        up: { perSec: (n / (upEnd - up.start)) * 1000, latency: up.latency },
        down: { perSec: (n / (downEnd - down.start)) * 1000, latency: down.latency },
        coldMaxMs: cold.cold!.max,
        clientResent: isV1 ? cs.resends : cs.resent,
        serverResent: ss.resent,
        clientTrouble: isV1 ? cs.overflows + cs.duplicates + cs.drops : cs.duplicates + cs.dropped,
    }
}

export async function v1peer(ctx: Context): Promise<SectionResult> {
    const n = ctx.quick ? 2000 : 20000
    const data = await withWorkers(async (keep): Promise<V1PeerData> => {
        const server = keep(await startWorker("server", 900000))
        const { port } = await server.call<{ port: number }>("listen")
        const v2 = await run(ctx, server, port, keep(await startWorker("client", 900000)), "v2", n, false)
        const v1 = await run(ctx, server, port, keep(await startWorker("v1client", 900000)), "v1", n, true)
        return { n, v2, v1 }
    })
    const row = (what: string, f: PeerFigures) => [
        what,
        int(f.up.perSec),
        ms(f.up.latency.p99),
        int(f.down.perSec),
        ms(f.down.latency.p99),
        ms(f.coldMaxMs),
        `${f.clientResent} / ${f.serverResent}`,
        int(f.clientTrouble),
    ]
    return {
        name: "v1peer",
        data,
        tables: [
            {
                title: `A v1 peer beside a devs-iot client, one server: qos writes, 64 in flight (${n.toLocaleString("en-US")} lines of 32 bytes each way; p99 of write called -> ACKed, ms)`,
                head: ["client", "client -> server lines/s", "p99", "server -> client lines/s", "p99", `first ${COLD} on a fresh link: slowest ACK`, "resent: client / server", "lost, twice or outages"],
                rows: [row("devs-iot Node client", data.v2), row("v1 peer (original client's behaviour, test kit)", data.v1)],
                notes: [
                    "Toward the v1 peer the server keeps at most 20 lines un-ACKed (the original client's receive queue). The v1 peer is the test kit's Node model of the original client, not a board: its own cost bounds its rates.",
                ],
            },
        ],
    }
}
