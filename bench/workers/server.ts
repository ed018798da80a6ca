// A devs-iot Server in its own process. It reads every line of every client
// (so clients' writes are never held back), and on request runs a benchmark
// op on one client's Connection or reports its own CPU and memory.
import { readFileSync } from "node:fs"
import { HttpStatus, openState, Server, type Connection, type HostileLimits } from "../../src/server/index.js"
import { Counter, roundTrips, sendMany, sendTimed, type SendMode } from "./ops.js"
import { serveRequests } from "../lib/rpc.js"
import { PAYLOAD } from "../lib/payload.js"

let server: Server | undefined
let status: HttpStatus | undefined
const counters = new Map<string, Counter>()
let disconnects = 0
const warned: Record<string, number> = {} // warnings by code
const downs = new Map<string, number>() // disconnects by id
let connects = 0
let cpuMark = process.cpuUsage()
let wallMark = performance.now()
let readMark = readBytes()

function conn(id: string): Promise<Connection> {
    if (!server) throw new Error("not listening")
    return server.clientConn(id)
}

function counter(id: string): Counter {
    const c = counters.get(id)
    if (!c) throw new Error(`no client ${id}`)
    return c
}

// Bytes this process read by read(2) and friends, sockets included.
function readBytes(): number {
    try {
        const m = /rchar:\s*(\d+)/.exec(readFileSync("/proc/self/io", "utf8"))
        return m ? Number(m[1]) : NaN
    } catch {
        return NaN
    }
}

serveRequests(
    {
        ping: () => "pong",
        async listen(a: { port?: number; timeout?: number; window?: number; limits?: HostileLimits; read?: boolean; keys?: Record<string, string>; state?: string; stateSync?: boolean }) {
            const state = a.state ? await openState(a.state, { sync: a.stateSync === true }) : undefined
            server = new Server({ port: a.port ?? 0, host: "127.0.0.1", timeout: a.timeout ?? 2000, ...(a.window ? { window: a.window } : {}), ...(a.limits ? { limits: a.limits } : {}), ...(a.keys ? { keys: a.keys } : {}), state })
            server.on("warning", (w) => (warned[w.code] = (warned[w.code] ?? 0) + 1))
            server.on("connect", (c: Connection) => {
                connects++
                if (a.read !== false && !counters.has(c.id)) counters.set(c.id, new Counter(c, c.id))
            })
            server.on("disconnect", (c: Connection) => {
                disconnects++
                downs.set(c.id, (downs.get(c.id) ?? 0) + 1)
            })
            await server.listen()
            return { port: server.port }
        },
        async waitFor(a: { id: string }) {
            await conn(a.id)
            return null
        },
        async rtt(a: { id: string; n: number; warmup: number }) {
            return roundTrips(await conn(a.id), a.n, a.warmup)
        },
        async send(a: { id: string; n: number; mode: SendMode }) {
            return sendMany(await conn(a.id), a.n, a.mode)
        },
        async sendTimed(a: { id: string; n: number; mode: SendMode }) {
            return sendTimed(await conn(a.id), a.n, a.mode)
        },
        // One client's link counters (resent, duplicates, ...).
        async stats(a: { id: string }) {
            return (await conn(a.id)).stats
        },
        async write(a: { id: string; line: string }) {
            await (await conn(a.id)).write(a.line)
            return null
        },
        // n qos writes without wait, not awaited: a burst the client holds.
        async burst(a: { id: string; n: number }) {
            const c = await conn(a.id)
            for (let i = 0; i < a.n; i++) c.write(PAYLOAD, { wait: false }).catch(() => {})
            return null
        },
        arm(a: { id: string; n: number; batch?: boolean }) {
            counter(a.id).arm(a.n, a.batch)
            return null
        },
        finished(a: { id: string }) {
            return counter(a.id).finished()
        },
        // CPU % of one core, RSS and bytes read since the last mark; links up.
        usage(a: { mark?: boolean }) {
            const now = performance.now()
            const cpu = process.cpuUsage(cpuMark)
            const rchar = readBytes()
            const ms = now - wallMark
            const r = {
                cpuPercent: ((cpu.user + cpu.system) / 1000 / ms) * 100,
                rssMB: process.memoryUsage().rss / 1048576,
                peakRssMB: process.resourceUsage().maxRSS / 1024,
                heapMB: process.memoryUsage().heapUsed / 1048576,
                readBytesPerSec: ((rchar - readMark) / ms) * 1000,
                up: server ? server.connections().filter((c) => c.status()).length : 0,
                connects,
                disconnects,
                ms,
            }
            if (a.mark) {
                cpuMark = process.cpuUsage()
                wallMark = now
                readMark = rchar
            }
            return r
        },
        // Heap after a full collection (needs --expose-gc), ids kept, warnings by code.
        heap(a: { id?: string }) {
            const gc = (globalThis as { gc?: () => void }).gc
            if (gc) for (let i = 0; i < 3; i++) gc()
            const m = process.memoryUsage()
            return { gc: gc !== undefined, heapUsed: m.heapUsed, external: m.external, rss: m.rss, ids: server?.connections().length ?? 0, up: server ? server.connections().filter((c) => c.status()).length : 0, warned: { ...warned }, downs: a.id ? (downs.get(a.id) ?? 0) : 0 }
        },
        // The HTTP side (metrics, status API) on a free loopback port.
        async statusOn() {
            if (!server) throw new Error("not listening")
            // The control (DEVS_IOT_BENCH_BARE_HTTP=1): a bare Node HTTP server
            // in the same windows, which tells devs-iot's HTTP side apart from
            // what turning any listener on and off does to the windows.
            if (process.env["DEVS_IOT_BENCH_BARE_HTTP"]) {
                const { createServer } = await import("node:http")
                const h = createServer((_q, r) => r.end('{"next":null}'))
                await new Promise<void>((r) => h.listen(0, "127.0.0.1", () => r()))
                status = { close: async () => { await new Promise<void>((r) => h.close(() => r())) }, port: (h.address() as { port: number }).port } as unknown as HttpStatus
                return { port: status.port }
            }
            status ??= new HttpStatus(server, { port: 0 })
            await status.listen()
            return { port: status.port }
        },
        async statusOff() {
            await status?.close()
            status = undefined
            return null
        },
        async close() {
            await status?.close()
            await server?.close()
            return null
        },
    },
    Number(process.argv[2])
)

process.on("SIGTERM", () => {
    void (server?.close() ?? Promise.resolve()).finally(() => process.exit(0))
})
