// Throughput of one link, each direction: lines per second from the first
// write to the last line read by the receiving application, in each write
// mode, and the plain TCP reference.
import { startWorker, withWorkers, type Worker } from "../lib/proc.js"
import type { Context, SectionResult } from "../lib/context.js"
import type { SendMode } from "../workers/ops.js"
import type { Summary } from "../lib/stats.js"
import { int, met } from "../lib/table.js"

interface Mode {
    key: string
    label: string
    mode: SendMode
    n: number // lines in a full run (a tenth in a quick one)
    target?: number // msg/s
}

// 4,000 writes outstanding stays under the default queue limit (4,096), so
// only the send window (64 un-ACKed ids) limits what is in flight.
const MODES: Mode[] = [
    { key: "wait", label: "qos, wait=true (one at a time)", mode: { qos: true, wait: true, inflight: 1 }, n: 20000, target: 5000 },
    { key: "nowait16", label: "qos, wait=false, 16 in flight", mode: { qos: true, wait: false, inflight: 16 }, n: 100000 },
    { key: "nowait64", label: "qos, wait=false, 64 in flight", mode: { qos: true, wait: false, inflight: 64 }, n: 200000, target: 100000 },
    { key: "window", label: "qos, wait=false, 4,000 queued (the window of 64 limits)", mode: { qos: true, wait: false, inflight: 4000 }, n: 200000 },
    { key: "noqos", label: "no qos, 4,000 queued", mode: { qos: false, wait: false, inflight: 4000 }, n: 200000 },
]

export interface Rate {
    n: number
    perSec: number // received by the application
    senderMs: number // until the sender's last write resolved
}

export interface ThroughputData {
    clientToServer: Record<string, Rate>
    serverToClient: Record<string, Rate>
    raw: { roundTripsPerSec: number; inflight64PerSec: number; inflight64CorkedPerSec: number }
}

// Sends `n` lines from `from` and times them until `to` has read them all.
// `batch`: the receiver reads with readlines() (every line there is per step).
export async function measure(from: Worker, to: Worker, id: string, n: number, mode: SendMode, fromIsServer: boolean, batch = false): Promise<Rate> {
    const target = fromIsServer ? {} : { id }
    const source = fromIsServer ? { id } : {}
    await to.call("arm", { ...target, n, batch })
    const sent = await from.call<{ start: number; ms: number }>("send", { ...source, n, mode }, 300000)
    const end = await to.call<number>("finished", target, 300000)
    return { n, perSec: (n / (end - sent.start)) * 1000, senderMs: sent.ms }
}

export async function throughput(ctx: Context): Promise<SectionResult> {
    const scale = ctx.quick ? 0.1 : 1
    const data = await withWorkers(async (keep): Promise<ThroughputData> => {
        const server = keep(await startWorker("server", 900000))
        const client = keep(await startWorker("client", 900000))
        const { port } = await server.call<{ port: number }>("listen")
        await client.call("connect", { id: "tp", port })
        await server.call("waitFor", { id: "tp" })
        const clientToServer: Record<string, Rate> = {}
        const serverToClient: Record<string, Rate> = {}
        // Warm both ends up (JIT) before anything counts.
        await measure(client, server, "tp", 5000, MODES[2]!.mode, false)
        await measure(server, client, "tp", 5000, MODES[2]!.mode, true)
        for (const m of MODES) {
            const n = Math.round(m.n * scale)
            ctx.log(`throughput: ${m.label}, ${n} lines each way`)
            clientToServer[m.key] = await measure(client, server, "tp", n, m.mode, false)
            serverToClient[m.key] = await measure(server, client, "tp", n, m.mode, true)
        }
        const rawServer = keep(await startWorker("raw", 600000))
        const rawClient = keep(await startWorker("raw", 600000))
        const raw = await rawServer.call<{ port: number }>("listen")
        await rawClient.call("connect", { port: raw.port })
        const rtt = await rawClient.call<Summary>("rtt", { n: Math.round(20000 * scale), warmup: 2000 }, 300000)
        await rawClient.call("flight", { n: 20000, inflight: 64, cork: true }, 300000)
        const n64 = Math.round(200000 * scale)
        const plain = await rawClient.call<{ ms: number }>("flight", { n: n64, inflight: 64 }, 300000)
        const corked = await rawClient.call<{ ms: number }>("flight", { n: n64, inflight: 64, cork: true }, 300000)
        return {
            clientToServer,
            serverToClient,
            raw: { roundTripsPerSec: 1000 / rtt.mean, inflight64PerSec: (n64 / plain.ms) * 1000, inflight64CorkedPerSec: (n64 / corked.ms) * 1000 },
        }
    })
    const rows = MODES.map((m) => {
        const a = data.clientToServer[m.key]!.perSec
        const b = data.serverToClient[m.key]!.perSec
        return [m.label, int(a), int(b), m.target ? `>= ${int(m.target)}` : "", m.target ? met(Math.min(a, b) >= m.target) : ""]
    })
    rows.push(["reference: plain TCP, a line and a 2-byte ACK, one at a time", int(data.raw.roundTripsPerSec), "", "", ""])
    rows.push(["reference: plain TCP, 64 in flight, one write() per line", int(data.raw.inflight64PerSec), "", "", ""])
    rows.push(["reference: plain TCP, 64 in flight, lines of one tick in one write (corked)", int(data.raw.inflight64CorkedPerSec), "", "", ""])
    return {
        name: "throughput",
        data,
        tables: [
            {
                title: "Throughput of one link (lines/s of 32 bytes, first write to last line read by the application)",
                head: ["write mode", "client -> server", "server -> client", "target", "met"],
                rows,
            },
        ],
    }
}
