// Many Node devs-iot Clients in one process: idle links for the scale
// benchmark, and the connect storm. Clients log to a counter, not a file: the
// first failed connect of a client (refused, reset, timed out) is counted as
// a retry.
import { pino } from "pino"
import { Client } from "../../src/server/index.js"
import { serveRequests } from "../lib/rpc.js"
import { percentile } from "../lib/stats.js"

const clients: Client[] = []
let up = 0
let retried = new Set<string>()
let lost = 0

// A pino logger that only counts: clients log "connect to ... failed" once
// per run of failures, and "link down" when an up link drops.
const log = pino(
    { level: "info", base: undefined, timestamp: false },
    {
        write(s: string) {
            const m = JSON.parse(s) as { msg?: string; client?: string }
            if (m.msg?.startsWith("connect to") && m.client) retried.add(m.client)
            else if (m.msg === "link down") lost++
        },
    }
)

function startOne(id: string, port: number, timeout: number, onUp: () => void): void {
    let first = true
    const c = new Client({ id, port, timeout, logger: log })
    c.on("status", (isUp: boolean) => {
        up += isUp ? 1 : -1
        if (isUp && first) {
            first = false
            onUp()
        }
    })
    clients.push(c)
    c.start()
}

serveRequests(
    {
        ping: () => "pong",
        // Starts `count` clients in batches of `batch` (batch >= count: all in
        // the same tick). With `paced`, a batch starts only once the previous
        // one is up, so a ramp never overloads this process or the server.
        // Answers once all are up or after `limitMs`: how long that took, and
        // how many retried or never came up.
        async start(a: { port: number; prefix: string; count: number; timeout: number; batch: number; paced: boolean; limitMs: number }) {
            const before = clients.length
            let firstUps = 0
            let started = 0
            const upTimes: number[] = []
            const t0 = performance.now()
            let allUpMs = NaN
            await new Promise<void>((resolve) => {
                const limit = setTimeout(resolve, a.limitMs)
                const batch = () => {
                    const end = Math.min(a.count, started + a.batch)
                    for (; started < end; started++) startOne(`${a.prefix}${before + started}`, a.port, a.timeout, onUp)
                }
                const onUp = () => {
                    upTimes.push(performance.now() - t0)
                    if (++firstUps === a.count) {
                        allUpMs = performance.now() - t0
                        clearTimeout(limit)
                        resolve()
                    } else if (firstUps === started) batch()
                }
                batch()
                if (!a.paced) while (started < a.count) batch()
            })
            const sorted = Float64Array.from(upTimes).sort()
            return { allUpMs, up: firstUps, neverUp: a.count - firstUps, retried: retried.size, upMedianMs: percentile(sorted, 0.5), upP90Ms: percentile(sorted, 0.9) }
        },
        status() {
            const cpu = process.cpuUsage()
            return { clients: clients.length, up, lost, retried: retried.size, cpuMs: (cpu.user + cpu.system) / 1000, rssMB: process.memoryUsage().rss / 1048576 }
        },
        resetCounts() {
            retried = new Set()
            lost = 0
            return null
        },
    },
    Number(process.argv[2])
)

process.on("SIGTERM", () => process.exit(0))
