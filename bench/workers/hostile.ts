// Peers that misbehave on purpose, in their own process, as raw v1 sockets
// from loopback addresses other than 127.0.0.1: flooders (empty lines and
// duplicates once their link is up), peers that never read (duplicates,
// each answered with an ACK they leave unread), and many quiet peers holding
// connections (memory per held connection and per idle id). A flooder or
// deaf peer that the server cuts connects again at once, as an attacker would.
import { connect, type Socket } from "node:net"
import { serveRequests } from "../lib/rpc.js"

const FLOOD = Buffer.from("\n\n\n\n00hello\n".repeat(4096))
const DUPS = Buffer.from("00hello\n".repeat(8192))

let running = false
const live = new Set<Socket>()
const held: Socket[] = []
let keepalive: NodeJS.Timeout | undefined // held peers send one every timeout/4 (2000 ms)
const stats = { sessions: 0, cut: 0, bytesSent: 0 }

// One session: id and a first message, then, once the server has spoken
// (so the flood is after the handshake), `chunk` again and again.
function session(port: number, from: string, id: string, chunk: Buffer, read: boolean): Promise<void> {
    return new Promise((resolve) => {
        const s = connect({ port, host: "127.0.0.1", localAddress: from })
        live.add(s)
        stats.sessions++
        s.on("error", () => {})
        s.once("close", () => {
            live.delete(s)
            if (running) stats.cut++
            resolve()
        })
        s.once("connect", () => s.write(`${id}\n00hello\n`))
        s.once("data", () => {
            if (!read) {
                s.pause()
                s.removeAllListeners("data")
            }
            const go = () => {
                while (running && !s.destroyed && s.write(chunk)) stats.bytesSent += chunk.length
                if (running && !s.destroyed) s.once("drain", go)
            }
            go()
        })
        if (read) s.on("data", () => {})
    })
}

async function loop(port: number, from: string, id: string, chunk: Buffer, read: boolean): Promise<void> {
    while (running) {
        await session(port, from, id, chunk, read)
        await new Promise((r) => setTimeout(r, 20))
    }
}

serveRequests(
    {
        ping: () => "pong",
        // `count` peers, the i-th from 127.0.0.(2+i) with id `${prefix}${i}`.
        start(a: { port: number; count: number; kind: "flood" | "deaf"; prefix: string }) {
            running = true
            for (let i = 0; i < a.count; i++) void loop(a.port, `127.0.0.${2 + i}`, `${a.prefix}${i}`, a.kind === "flood" ? FLOOD : DUPS, a.kind === "flood")
            return null
        },
        stop() {
            running = false
            for (const s of live) s.destroy()
            return { ...stats }
        },
        // `n` quiet v1 peers, ids `${prefix}${i}`, spread over `sources`
        // addresses from 127.0.1.1; resolves once each has heard the server.
        async hold(a: { port: number; n: number; prefix: string; sources: number; batch: number }) {
            for (let from = 0; from < a.n; from += a.batch) {
                const batch: Array<Promise<void>> = []
                for (let i = from; i < Math.min(a.n, from + a.batch); i++) {
                    batch.push(
                        new Promise((resolve, reject) => {
                            const s = connect({ port: a.port, host: "127.0.0.1", localAddress: `127.0.1.${1 + (i % a.sources)}` })
                            s.on("error", reject)
                            s.once("close", () => reject(new Error(`held peer ${i} closed`)))
                            s.once("connect", () => s.write(`${a.prefix}${i}\n00hello\n`))
                            s.once("data", () => {
                                s.removeAllListeners("close")
                                s.on("data", () => {})
                                held.push(s)
                                resolve()
                            })
                        })
                    )
                }
                await Promise.all(batch)
            }
            if (!keepalive) keepalive = setInterval(() => held.forEach((s) => s.write("\n")), 500)
            return null
        },
        release() {
            if (keepalive) clearInterval(keepalive)
            keepalive = undefined
            for (const s of held.splice(0)) s.destroy()
            return null
        },
    },
    Number(process.argv[2])
)
