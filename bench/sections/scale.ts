// Idle clients held by one server: with N links up and nothing on them but
// keepalives (timeout 2000 ms, the default: each end sends one every 500 ms),
// the server's CPU (% of one core) and memory. Clients live in as few
// processes as possible (5,000 each).
import { ONE_ADDRESS_FLEET, startWorker, withWorkers, type Worker } from "../lib/proc.js"
import { sleep, type Context, type SectionResult } from "../lib/context.js"
import { int, met } from "../lib/table.js"

const PER_PROCESS = 5000
const TIMEOUT = 2000
export const CPU_TARGET = 100 // % of one core, at 10,000 clients
export const RSS_TARGET = 1024 // MB

interface Usage {
    cpuPercent: number
    rssMB: number
    peakRssMB: number
    heapMB: number
    readBytesPerSec: number
    up: number
    connects: number
    disconnects: number
    ms: number
}

interface IdleStatus {
    clients: number
    up: number
    lost: number
    retried: number
    cpuMs: number
    rssMB: number
}

export interface ScaleRow {
    clients: number
    processes: number
    up: number // links up at the server at the end of the window
    disconnects: number // during the window
    cpuPercent: number
    rssMB: number
    peakRssMB: number // the server's largest RSS so far
    heapMB: number
    keepalivesPerSec: number // lines the server read per second (a keepalive is one byte, "\n")
    clientCpuPercent: number // all client processes together
    clientRssMB: number
    rampMs: number
}

export async function scale(ctx: Context): Promise<SectionResult> {
    const steps = ctx.quick ? [1000] : [1000, 5000, 10000]
    const windowMs = ctx.quick ? 3000 : 10000
    const rows = await withWorkers(async (keep) => {
        const server = keep(await startWorker("server", 900000))
        const { port } = await server.call<{ port: number }>("listen", { timeout: TIMEOUT, limits: ONE_ADDRESS_FLEET })
        const procs: Array<{ w: Worker; count: number }> = []
        const out: ScaleRow[] = []
        let total = 0
        for (const step of steps) {
            const t0 = performance.now()
            while (total < step) {
                let p = procs.find((q) => q.count < PER_PROCESS)
                if (!p) {
                    p = { w: keep(await startWorker("idle", 900000)), count: 0 }
                    procs.push(p)
                }
                const add = Math.min(step - total, PER_PROCESS - p.count)
                const r = await p.w.call<{ neverUp: number }>(
                    "start",
                    { port, prefix: `i${procs.indexOf(p)}-`, count: add, timeout: TIMEOUT, batch: 200, paced: true, limitMs: 120000 },
                    180000
                )
                if (r.neverUp > 0) throw new Error(`${r.neverUp} of ${add} idle clients did not connect within 120 s`)
                p.count += add
                total += add
            }
            const rampMs = performance.now() - t0
            await sleep(3000) // past one timeout: every link in its steady state
            ctx.log(`scale: ${step} idle clients, measuring for ${windowMs} ms`)
            const before = await server.call<Usage>("usage", { mark: true })
            const cb = await Promise.all(procs.map((p) => p.w.call<IdleStatus>("status")))
            await sleep(windowMs)
            const u = await server.call<Usage>("usage", { mark: true })
            const ca = await Promise.all(procs.map((p) => p.w.call<IdleStatus>("status")))
            const clientCpuMs = ca.reduce((s, c, i) => s + c.cpuMs - cb[i]!.cpuMs, 0)
            out.push({
                clients: step,
                processes: procs.length,
                up: u.up,
                disconnects: u.disconnects - before.disconnects,
                cpuPercent: u.cpuPercent,
                rssMB: u.rssMB,
                peakRssMB: u.peakRssMB,
                heapMB: u.heapMB,
                keepalivesPerSec: u.readBytesPerSec,
                clientCpuPercent: (clientCpuMs / u.ms) * 100,
                clientRssMB: ca.reduce((s, c) => s + c.rssMB, 0),
                rampMs,
            })
        }
        return out
    })
    const top = rows[rows.length - 1]!
    return {
        name: "scale",
        data: { timeout: TIMEOUT, windowMs, perProcess: PER_PROCESS, rows },
        tables: [
            {
                title: `Idle clients held by one server (timeout ${TIMEOUT} ms: a keepalive each way every ${TIMEOUT / 4} ms; ${windowMs / 1000} s window)`,
                head: ["clients (client processes)", "up / dropped in the window", "server CPU, % of a core", "server RSS (peak)", "bytes read/s (keepalive: 1 byte; nominal 2/client/s)", "client processes' CPU", "target", "met"],
                rows: rows.map((r) => {
                    const last = r === top && r.clients >= 10000
                    return [
                        `${int(r.clients)} (${r.processes})`,
                        `${int(r.up)} / ${int(r.disconnects)}`,
                        `${r.cpuPercent.toFixed(0)} %`,
                        `${int(r.rssMB)} MB (${int(r.peakRssMB)} MB)`,
                        int(r.keepalivesPerSec),
                        `${r.clientCpuPercent.toFixed(0)} %`,
                        last ? `<= ${CPU_TARGET} %, <= 1 GB` : "",
                        last ? met(r.cpuPercent <= CPU_TARGET && r.peakRssMB <= RSS_TARGET && r.up === r.clients && r.disconnects === 0) : "",
                    ]
                }),
            },
        ],
    }
}
