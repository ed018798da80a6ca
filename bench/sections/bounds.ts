// The server against peers that misbehave on purpose, with default settings:
// - honest clients' qos round trip while 8 peers flood empty lines and
//   duplicates after the handshake (each cut one reconnects at once);
// - the server's RSS while 8 peers that never read send duplicates (each
//   answered with an ACK), and an honest client's round trip meanwhile;
// - memory per held connection and per idle id (one that came and went).
// Flooders and deaf peers run in their own process, from 127.0.0.2-9.
import { startWorker, withWorkers, type Worker } from "../lib/proc.js"
import { sleep, type Context, type SectionResult } from "../lib/context.js"
import type { Summary } from "../lib/stats.js"
import { int, met, ms } from "../lib/table.js"

export const FLOOD_P99_TARGET = 10 // ms
export const DEAF_RSS_TARGET = 300 // MB
const PEERS = 8

interface Usage {
    cpuPercent: number
    rssMB: number
    peakRssMB: number
    disconnects: number
}

interface Heap {
    gc: boolean
    heapUsed: number
    external: number
    rss: number
    ids: number
    up: number
    warned: Record<string, number>
    downs: number // of the id asked for
}

interface HostileStats {
    sessions: number
    cut: number
    bytesSent: number
}

export interface BoundsData {
    flood: { n: number; seconds: number; quiet: Summary; flooded: Summary; cpuPercent: number; peers: HostileStats; warned: Record<string, number>; honestDisconnects: number }
    deaf: { seconds: number; baseRssMB: number; peakRssMB: number; quiet: Summary; during: Summary; peers: HostileStats; warned: Record<string, number>; honestDisconnects: number }
    memory: { n: number; sources: number; base: Heap; held: Heap; idle: Heap; heldPerConn: number; idlePerId: number; heldRssPerConn: number }
}

async function honest(keep: <W extends Worker>(w: W) => W, port: number, id: string): Promise<Worker> {
    const c = keep(await startWorker("client", 900000))
    await c.call("connect", { id, port })
    return c
}

export async function bounds(ctx: Context): Promise<SectionResult> {
    const n = ctx.quick ? 2000 : 20000 // round trips without hostile peers
    const floodSeconds = ctx.quick ? 5 : 60
    const deafSeconds = ctx.quick ? 10 : 60
    const ids = ctx.quick ? 2000 : 20000
    const sources = ctx.quick ? 1 : 10 // newIdBurst (2048) per address
    const flood = await withWorkers(async (keep) => {
        const server = keep(await startWorker("server", 900000))
        const { port } = await server.call<{ port: number }>("listen")
        const client = await honest(keep, port, "honest")
        await server.call("waitFor", { id: "honest" })
        const quiet = await client.call<Summary>("rtt", { n, warmup: 500 }, 300000)
        const peers = keep(await startWorker("hostile", 900000))
        await peers.call("start", { port, count: PEERS, kind: "flood", prefix: "flood" })
        await sleep(1500) // every flooder past its handshake
        ctx.log(`bounds: round trips for ${floodSeconds} s with ${PEERS} flooders`)
        await server.call("usage", { mark: true })
        const flooded = await client.call<Summary>("rttFor", { ms: floodSeconds * 1000 }, floodSeconds * 1000 + 120000)
        const u = await server.call<Usage>("usage", { mark: true })
        const st = await peers.call<HostileStats>("stop")
        const h = await server.call<Heap>("heap", { id: "honest" })
        return { n, seconds: floodSeconds, quiet, flooded, cpuPercent: u.cpuPercent, peers: st, warned: h.warned, honestDisconnects: h.downs }
    })
    // With the defaults the read budget cuts a deaf peer's duplicates before
    // its unread ACKs reach the cap on unsent output (the cap alone: the
    // never-reading peer test in test/node/bounds.test.ts).
    const deafRun = (limits: Record<string, number>) => withWorkers(async (keep) => {
        const server = keep(await startWorker("server", 900000))
        const { port } = await server.call<{ port: number }>("listen", { limits })
        const client = await honest(keep, port, "honest")
        await server.call("waitFor", { id: "honest" })
        const quiet = await client.call<Summary>("rtt", { n: 1000, warmup: 500 }, 300000)
        const base = await server.call<Usage>("usage", { mark: true })
        const peers = keep(await startWorker("hostile", 900000))
        await peers.call("start", { port, count: PEERS, kind: "deaf", prefix: "deaf" })
        ctx.log(`bounds: ${PEERS} peers that never read, for ${deafSeconds} s, limits ${JSON.stringify(limits)}`)
        const during = await client.call<Summary>("rttFor", { ms: deafSeconds * 1000 }, deafSeconds * 1000 + 120000)
        const u = await server.call<Usage>("usage", { mark: true })
        const st = await peers.call<HostileStats>("stop")
        const h = await server.call<Heap>("heap", { id: "honest" })
        return { seconds: deafSeconds, baseRssMB: base.rssMB, peakRssMB: u.peakRssMB, quiet, during, peers: st, warned: h.warned, honestDisconnects: h.downs }
    })
    const deaf = await deafRun({})
    const memory = await withWorkers(async (keep) => {
        const server = keep(await startWorker("server", 900000, ["--expose-gc"]))
        const { port } = await server.call<{ port: number }>("listen", { read: false })
        const peers = keep(await startWorker("hostile", 900000))
        // Warm up the code paths, then forget those ids (a fresh server would need new ones).
        const base = await server.call<Heap>("heap")
        ctx.log(`bounds: ${ids} held connections from ${sources} address(es)`)
        await peers.call("hold", { port, n: ids, prefix: "m", sources, batch: 200 }, 600000)
        await sleep(1000)
        const held = await server.call<Heap>("heap")
        await peers.call("release")
        await sleep(3000) // every link down
        const idle = await server.call<Heap>("heap")
        return {
            n: ids,
            sources,
            base,
            held,
            idle,
            heldPerConn: (held.heapUsed + held.external - base.heapUsed - base.external) / ids,
            idlePerId: (idle.heapUsed + idle.external - base.heapUsed - base.external) / ids,
            heldRssPerConn: (held.rss - base.rss) / ids,
        }
    })
    const data: BoundsData = { flood, deaf, memory }
    const floodOk = flood.flooded.p99 <= FLOOD_P99_TARGET && flood.honestDisconnects === 0
    const deafOk = (d: BoundsData["deaf"]) => d.peakRssMB <= DEAF_RSS_TARGET && d.honestDisconnects === 0
    const codes = (w: Record<string, number>) => Object.entries(w).map(([k, v]) => `${k} ${int(v)}`).join(", ") || "none"
    return {
        name: "bounds",
        data,
        tables: [
            {
                title: `Peers that misbehave on purpose (default settings; ${PEERS} hostile peers from 127.0.0.2-9, each reconnecting at once when cut)`,
                head: ["case", "honest qos round trip, median / p99 (ms)", "without them", "server", "hostile sessions (cut)", "server warnings", "target", "met"],
                rows: [
                    [
                        `${PEERS} peers flooding empty lines and duplicates after the handshake, for ${flood.seconds} s`,
                        `${ms(flood.flooded.median)} / ${ms(flood.flooded.p99)} (${int(flood.flooded.n)} round trips, max ${ms(flood.flooded.max)})`,
                        `${ms(flood.quiet.median)} / ${ms(flood.quiet.p99)}`,
                        `CPU ${flood.cpuPercent.toFixed(0)} % of a core`,
                        `${int(flood.peers.sessions)} (${int(flood.peers.cut)})`,
                        codes(flood.warned),
                        `p99 <= ${FLOOD_P99_TARGET} ms, honest never dropped`,
                        met(floodOk),
                    ],
                    ...[
                        [deaf, ""],
                    ].map(([d, how]) => {
                        const x = d as BoundsData["deaf"]
                        return [
                            `${PEERS} peers that never read, sending duplicates, for ${x.seconds} s${how as string}`,
                            `${ms(x.during.median)} / ${ms(x.during.p99)} (${int(x.during.n)} round trips, max ${ms(x.during.max)})`,
                            `${ms(x.quiet.median)} / ${ms(x.quiet.p99)}`,
                            `RSS ${int(x.baseRssMB)} MB before, peak ${int(x.peakRssMB)} MB`,
                            `${int(x.peers.sessions)} (${int(x.peers.cut)})`,
                            codes(x.warned),
                            `peak RSS <= ${DEAF_RSS_TARGET} MB, honest never dropped`,
                            met(deafOk(x)),
                        ]
                    }),
                ],
            },
            {
                title: `Server memory per connection and per id (${int(memory.n)} v1 peers from ${memory.sources} address(es); heap + external after a full GC)`,
                head: ["state", "per id", "ids kept", "server RSS"],
                rows: [
                    ["held: link up, keepalives only", `${int(memory.heldPerConn)} bytes (RSS ${int(memory.heldRssPerConn)} bytes)`, int(memory.held.ids), `${int(memory.held.rss / 1048576)} MB`],
                    ["idle: came, went, kept for its return", `${int(memory.idlePerId)} bytes`, int(memory.idle.ids), `${int(memory.idle.rss / 1048576)} MB`],
                ],
            },
        ],
    }
}
