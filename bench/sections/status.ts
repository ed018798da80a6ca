// The cost of the HTTP side (metrics and status API) on idle clients: the
// same server and clients measured in windows with the HTTP side off and on
// (nothing asks), alternating, then on with a Prometheus scrape of /metrics
// every second, on with every board read from the status API every second,
// and off. Each window with the side on is compared with the off windows on
// either side of it, which cancels the server's drift (it settles for a
// while after the clients connect). Target: on costs at most 5 % more server
// CPU than off.
import { request } from "node:http"
import { ONE_ADDRESS_FLEET, startWorker, withWorkers, type Worker } from "../lib/proc.js"
import { sleep, type Context, type SectionResult } from "../lib/context.js"
import { int, met, ms } from "../lib/table.js"

const PER_PROCESS = 5000
const TIMEOUT = 2000
export const STATUS_CPU_TARGET = 5 // % more server CPU with the HTTP side on

interface Usage {
    cpuPercent: number
    rssMB: number
    up: number
    disconnects: number
    ms: number
}

interface Window {
    mode: "off" | "on" | "scrape" | "api"
    cpuPercent: number
    rssMB: number
    up: number
    disconnects: number
    scrapes: number
    scrapeMs: number // mean time of one scrape (or one walk of the status API), as the reader saw it
    scrapeBytes: number
}

function get(port: number, path: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, path }, (res) => {
            const parts: Buffer[] = []
            res.on("data", (b: Buffer) => parts.push(b))
            res.on("end", () => (res.statusCode === 200 ? resolve(Buffer.concat(parts)) : reject(new Error(`GET ${path}: ${res.statusCode}`))))
        })
        req.on("error", reject)
        req.end()
    })
}

const scrape = async (port: number) => (await get(port, "/metrics")).length

// Every board from the status API, page by page as a client of it would.
async function walkBoards(port: number): Promise<number> {
    let bytes = 0
    let offset: number | null = 0
    while (offset !== null) {
        const b = await get(port, `/api/boards?offset=${offset}&limit=1000`)
        bytes += b.length
        offset = (JSON.parse(b.toString()) as { next: number | null }).next
    }
    return bytes
}

export async function status(ctx: Context): Promise<SectionResult> {
    const clients = ctx.quick ? 1000 : 10000
    const windowMs = ctx.quick ? 3000 : 10000
    const windows = await withWorkers(async (keep) => {
        const server = keep(await startWorker("server", 900000))
        const { port } = await server.call<{ port: number }>("listen", { timeout: TIMEOUT, limits: ONE_ADDRESS_FLEET })
        const procs: Worker[] = []
        for (let started = 0; started < clients; started += PER_PROCESS) {
            const w = keep(await startWorker("idle", 900000))
            procs.push(w)
            const count = Math.min(PER_PROCESS, clients - started)
            const r = await w.call<{ neverUp: number }>("start", { port, prefix: `s${procs.length}-`, count, timeout: TIMEOUT, batch: 200, paced: true, limitMs: 120000 }, 180000)
            if (r.neverUp > 0) throw new Error(`${r.neverUp} of ${count} idle clients did not connect within 120 s`)
        }
        await sleep(3000) // past one timeout: every link in its steady state
        const out: Window[] = []
        let httpPort = -1
        let on = false
        for (const mode of ["off", "on", "off", "on", "off", "on", "off", "scrape", "off", "api", "off"] as const) {
            if (mode !== "off" && !on) httpPort = (await server.call<{ port: number }>("statusOn", {})).port
            if (mode === "off" && on) await server.call("statusOff", {})
            on = mode !== "off"
            ctx.log(`status: ${clients} idle clients, HTTP side ${mode}, ${windowMs} ms`)
            const before = await server.call<Usage>("usage", { mark: true })
            let scrapes = 0
            let scrapeMs = 0
            let scrapeBytes = 0
            if (mode === "scrape" || mode === "api") {
                const end = performance.now() + windowMs
                while (performance.now() < end) {
                    const t0 = performance.now()
                    scrapeBytes = mode === "scrape" ? await scrape(httpPort) : await walkBoards(httpPort)
                    scrapeMs += performance.now() - t0
                    scrapes++
                    await sleep(Math.max(0, 1000 - (performance.now() - t0)))
                }
            } else await sleep(windowMs)
            const u = await server.call<Usage>("usage", { mark: true })
            out.push({ mode, cpuPercent: u.cpuPercent, rssMB: u.rssMB, up: u.up, disconnects: u.disconnects - before.disconnects, scrapes, scrapeMs: scrapes ? scrapeMs / scrapes : NaN, scrapeBytes })
        }
        return out
    })
    // A window with the side on against the mean of the off windows around it, in % of that mean.
    const vsOff = (i: number) => {
        const base = (windows[i - 1]!.cpuPercent + windows[i + 1]!.cpuPercent) / 2
        return ((windows[i]!.cpuPercent - base) / base) * 100
    }
    const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(1)} %`
    const onIdx = windows.flatMap((w, i) => (w.mode === "on" ? [i] : []))
    const onMore = onIdx.reduce((a, i) => a + vsOff(i), 0) / onIdx.length
    const onOk = onMore <= STATUS_CPU_TARGET && windows.every((w) => w.disconnects === 0)
    const label = (m: Window["mode"]) => (m === "scrape" ? "on, /metrics scraped every second" : m === "api" ? "on, every board read from /api/boards every second" : m === "on" ? "on, not asked" : "off")
    return {
        name: "status",
        data: { clients, timeout: TIMEOUT, windowMs, windows, onMorePercent: onMore },
        tables: [
            {
                title: `The HTTP side's cost on ${int(clients)} idle clients (one server, windows of ${windowMs / 1000} s in this order)`,
                head: ["HTTP side", "server CPU, % of a core", "vs the off windows around it", "server RSS", "up / dropped", "reads (mean time, size)"],
                rows: windows.map((w, i) => [
                    label(w.mode),
                    `${w.cpuPercent.toFixed(1)} %`,
                    w.mode === "off" ? "" : signed(vsOff(i)),
                    `${int(w.rssMB)} MB`,
                    `${int(w.up)} / ${int(w.disconnects)}`,
                    w.scrapes ? `${w.scrapes} (${ms(w.scrapeMs)} ms, ${int(w.scrapeBytes)} B)` : "",
                ]),
                notes: [
                    "CPU of a shared machine moves by a few % between windows on its own: compare the off windows for the noise.",
                    "prom-client's process metrics (a GC observer and an event-loop monitor) start with the first on window and run until the process ends (nothing can stop them; a server starts them once per process): the off windows after it carry them too. The first on window is the only one against an off window without them.",
                ],
            },
            {
                title: `The HTTP side on, not asked: mean of its ${onIdx.length} windows against the off windows around each`,
                head: ["more server CPU than off", "target", "met"],
                rows: [[signed(onMore), `<= +${STATUS_CPU_TARGET} %`, met(onOk)]],
            },
        ],
    }
}
