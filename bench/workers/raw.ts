// The reference: two Node processes exchanging a line and a 2-byte ACK
// ("A\n") over plain TCP, no protocol. The server ACKs every line; the client
// times round trips, and sends with a number of lines in flight.
import { connect, createServer, type Socket } from "node:net"
import { once } from "node:events"
import { serveRequests } from "../lib/rpc.js"
import { summarize } from "../lib/stats.js"
import { PAYLOAD } from "../lib/payload.js"

const LINE = Buffer.from(PAYLOAD + "\n")
const NL = 10
let sock: Socket | undefined
let onAcks: (n: number) => void = () => {}

function countLines(b: Buffer): number {
    let n = 0
    for (let i = b.indexOf(NL); i >= 0; i = b.indexOf(NL, i + 1)) n++
    return n
}

function roundTrip(): Promise<void> {
    return new Promise((resolve) => {
        onAcks = () => resolve()
        sock!.write(LINE)
    })
}

serveRequests(
    {
        ping: () => "pong",
        async listen() {
            const srv = createServer({ noDelay: true }, (s) => {
                s.on("data", (b: Buffer) => {
                    const n = countLines(b)
                    if (n > 0) s.write(Buffer.from("A\n".repeat(n)))
                })
                s.on("error", () => {})
            })
            srv.listen(0, "127.0.0.1")
            await once(srv, "listening")
            const a = srv.address()
            return { port: typeof a === "object" && a ? a.port : 0 }
        },
        // Forwards each connection to `port`, byte for byte both ways: one
        // more process on the path, as a gateway is, doing nothing else.
        async relay(a: { port: number }) {
            const srv = createServer({ noDelay: true }, (s) => {
                const up = connect({ port: a.port, host: "127.0.0.1", noDelay: true })
                s.on("data", (b: Buffer) => up.write(b))
                up.on("data", (b: Buffer) => s.write(b))
                for (const [x, y] of [[s, up], [up, s]] as const) {
                    x.on("error", () => y.destroy())
                    x.on("close", () => y.destroy())
                }
            })
            srv.listen(0, "127.0.0.1")
            await once(srv, "listening")
            const addr = srv.address()
            return { port: typeof addr === "object" && addr ? addr.port : 0 }
        },
        async connect(a: { port: number }) {
            sock?.destroy()
            sock = connect({ port: a.port, host: "127.0.0.1", noDelay: true })
            await once(sock, "connect")
            sock.on("data", (b: Buffer) => onAcks(countLines(b)))
            return null
        },
        async rtt(a: { n: number; warmup: number }) {
            for (let i = 0; i < a.warmup; i++) await roundTrip()
            const samples = new Float64Array(a.n)
            for (let i = 0; i < a.n; i++) {
                const t0 = performance.now()
                await roundTrip()
                samples[i] = performance.now() - t0
            }
            return summarize(samples)
        },
        // `n` lines, at most `inflight` un-ACKed at a time; elapsed ms. With
        // `cork`, the lines written in one tick leave in one system call, as
        // devs-iot's LinkDriver does; without, one write() per line.
        async flight(a: { n: number; inflight: number; cork?: boolean }) {
            const t0 = performance.now()
            await new Promise<void>((resolve) => {
                let sent = 0
                let acked = 0
                const top = () => {
                    if (a.cork) {
                        sock!.cork()
                        process.nextTick(() => sock!.uncork())
                    }
                    while (sent < a.n && sent - acked < a.inflight) {
                        sent++
                        sock!.write(LINE)
                    }
                }
                onAcks = (n) => {
                    acked += n
                    if (acked >= a.n) resolve()
                    else top()
                }
                top()
            })
            return { ms: performance.now() - t0 }
        },
    },
    Number(process.argv[2])
)
