// Idle boards over two MQTT gateways (Mosquitto): N Node clients, half on
// each gateway process, each board with its MQTT session open; then, over
// a window with nothing but keepalives, each gateway's CPU (% of a core)
// and RSS, and Mosquitto's.
import { spawn, type ChildProcess } from "node:child_process"
import { join } from "node:path"
import { Mosquitto } from "../../test/kit/mosquitto.js"
import { freePort } from "../../test/kit/util.js"
import { ROOT } from "../../test/kit/devs.js"
import { procUsage as usage, startWorker, withWorkers } from "../lib/proc.js"
import { sleep, type Context, type SectionResult } from "../lib/context.js"
import { int } from "../lib/table.js"

const TIMEOUT = 2000

export async function mqttIdle(ctx: Context): Promise<SectionResult> {
    const total = ctx.quick ? 1000 : 10000
    const windowMs = ctx.quick ? 3000 : 10000
    const broker = new Mosquitto()
    await broker.start()
    const gws: ChildProcess[] = []
    try {
        const ports = [await freePort(), await freePort()]
        for (const [i, port] of ports.entries()) {
            const g = spawn(process.execPath, [join(ROOT, "bin/devs-iot.js"), "gateway", "--mqtt", broker.url, "--port", String(port), "--name", `idle${i}`, "--log-level", "error"], { stdio: ["ignore", "ignore", "inherit"] })
            gws.push(g)
        }
        await sleep(1500) // both listening (their first lines come within a second)
        const rows = await withWorkers(async (keep) => {
            const started = performance.now()
            const per = total / 2
            await Promise.all(
                ports.map(async (port, i) => {
                    const w = keep(await startWorker("idle", 900000))
                    const r = await w.call<{ neverUp: number }>("start", { port, prefix: `g${i}-`, count: per, timeout: TIMEOUT, batch: 200, paced: true, limitMs: 300000 }, 400000)
                    if (r.neverUp > 0) throw new Error(`${r.neverUp} of ${per} idle boards did not connect to gateway ${i}`)
                })
            )
            const rampMs = performance.now() - started
            await sleep(5000) // sessions opened, steady state
            ctx.log(`mqttidle: ${total} idle boards over 2 gateways, measuring for ${windowMs} ms`)
            const pids = [...gws.map((g) => g.pid!), broker.pid]
            const before = pids.map(usage)
            const t0 = performance.now()
            await sleep(windowMs)
            const ms = performance.now() - t0
            const after = pids.map(usage)
            return pids.map((_, i) => ({ who: i < 2 ? `gateway ${i + 1} (${total / 2} boards)` : "mosquitto", cpuPercent: ((after[i]!.cpuMs - before[i]!.cpuMs) / ms) * 100, rssMB: after[i]!.rssMB, rampMs }))
        })
        return {
            name: "mqttidle",
            data: { total, windowMs, timeout: TIMEOUT, rows },
            tables: [
                {
                    title: `${int(total)} idle boards over 2 MQTT gateways and Mosquitto (timeout ${TIMEOUT} ms; each board holds an MQTT session; ${windowMs / 1000} s window; ramp ${int(rows[0]!.rampMs)} ms)`,
                    head: ["process", "CPU, % of a core", "RSS"],
                    rows: rows.map((r) => [r.who, `${r.cpuPercent.toFixed(0)} %`, `${int(r.rssMB)} MB`]),
                },
            ],
        }
    } finally {
        for (const g of gws) if (g.exitCode === null && g.pid) process.kill(g.pid, "SIGKILL")
        await broker.close()
    }
}
