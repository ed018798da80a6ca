// qos write round trip (write called -> resolved) between a Node client and
// the server, timed at each end, and the raw TCP reference; then the same
// from the client on a keyed link (authenticated) and an encrypted one, with
// the time from start() to the link up for each.
import { startWorker, withWorkers } from "../lib/proc.js"
import type { Context, SectionResult } from "../lib/context.js"
import type { Summary } from "../lib/stats.js"
import { met, ms } from "../lib/table.js"

export interface LatencyData {
    atClient: Summary // Node client writes, server ACKs
    atServer: Summary // server writes, Node client ACKs
    raw: Summary // reference: a line and a 2-byte ACK over plain TCP
    keyed: KeyedLatency[]
}

export interface KeyedLatency {
    link: "plain" | "keyed" | "keyed, encrypted"
    upMs: number // start() to the link up, over loopback
    rtt: Summary // timed at the client
}

const KEY = "5a".repeat(32)

export const RTT_MEDIAN_TARGET = 0.2
export const RTT_P99_TARGET = 1

export async function latency(ctx: Context): Promise<SectionResult> {
    const n = ctx.quick ? 2000 : 20000
    const warmup = 2000
    const data = await withWorkers(async (keep) => {
        const server = keep(await startWorker("server", 600000))
        const client = keep(await startWorker("client", 600000))
        const { port } = await server.call<{ port: number }>("listen")
        await client.call("connect", { id: "lat", port })
        await server.call("waitFor", { id: "lat" })
        ctx.log(`latency: ${n} round trips each way`)
        const atClient = await client.call<Summary>("rtt", { n, warmup }, 300000)
        const atServer = await server.call<Summary>("rtt", { id: "lat", n, warmup }, 300000)
        const rawServer = keep(await startWorker("raw", 600000))
        const rawClient = keep(await startWorker("raw", 600000))
        const raw = await rawServer.call<{ port: number }>("listen")
        await rawClient.call("connect", { port: raw.port })
        const rawRtt = await rawClient.call<Summary>("rtt", { n, warmup }, 300000)
        const keyed: KeyedLatency[] = []
        for (const link of ["plain", "keyed", "keyed, encrypted"] as const) {
            const ks = keep(await startWorker("server", 600000))
            const kc = keep(await startWorker("client", 600000))
            const id = "key"
            const p = await ks.call<{ port: number }>("listen", link === "plain" ? {} : { keys: { [id]: KEY } })
            const upMs = await kc.call<number>("connect", { id, port: p.port, ...(link === "plain" ? {} : { key: KEY, encrypt: link !== "keyed" }) })
            await ks.call("waitFor", { id })
            keyed.push({ link, upMs, rtt: await kc.call<Summary>("rtt", { n, warmup }, 300000) })
        }
        return { atClient, atServer, raw: rawRtt, keyed }
    })
    const row = (what: string, s: Summary, target: boolean) => [
        what,
        ms(s.median),
        ms(s.p99),
        ms(s.mean),
        target ? `<= ${RTT_MEDIAN_TARGET} / <= ${RTT_P99_TARGET}` : "",
        target ? met(s.median <= RTT_MEDIAN_TARGET && s.p99 <= RTT_P99_TARGET) : "",
    ]
    return {
        name: "latency",
        data,
        tables: [
            {
                title: `qos write round trip, Node (ms, ${n.toLocaleString("en-US")} writes each)`,
                head: ["write called -> resolved", "median", "p99", "mean", "target median / p99", "met"],
                rows: [
                    row("Node client -> server, timed at the client", data.atClient, true),
                    row("server -> Node client, timed at the server", data.atServer, true),
                    row("reference: plain TCP, a line and a 2-byte ACK", data.raw, false),
                ],
            },
            {
                title: `authentication and encryption: connect and qos round trip at the client (ms, ${n.toLocaleString("en-US")} writes each, fresh processes)`,
                head: ["link", "start() to up", "median", "p99", "mean"],
                rows: data.keyed.map((k) => [k.link, ms(k.upMs), ms(k.rtt.median), ms(k.rtt.p99), ms(k.rtt.mean)]),
            },
        ],
    }
}
