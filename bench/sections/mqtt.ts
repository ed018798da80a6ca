// The MQTT gateway: lines/s and p99 latency through one gateway process and
// Mosquitto, board -> subscriber (QoS 2) and publisher -> board (QoS 1),
// beside MQTT.js publisher -> subscriber on the same broker at the same QoS,
// in the same run (target: the gateway row >= 80 % of its reference), in
// two layouts of the processes over the CPUs (LAYOUTS). Each row also
// gives the CPU and write system calls per line of each process
// ("clients": this process, which holds the board, publisher, subscriber).
import { execFileSync, spawn } from "node:child_process"
import { join } from "node:path"
import { connect as mqttConnect, type MqttClient } from "mqtt"
import { Client } from "../../src/server/index.js"
import { Mosquitto } from "../../test/kit/mosquitto.js"
import { freePort } from "../../test/kit/util.js"
import { ROOT } from "../../test/kit/devs.js"
import type { Context, SectionResult } from "../lib/context.js"
import { within } from "../lib/context.js"
import { summarize, type Summary } from "../lib/stats.js"
import { procUsage, startWorker, withWorkers } from "../lib/proc.js"
import { int, met, ms } from "../lib/table.js"

interface Flow {
    n: number
    perSec: number
    p99: number
    median: number
    cpuUsPerLine: Record<string, number> // CPU (user + system) per line, by process
    writesPerLine: Record<string, number> // write system calls per line, by process
    readsPerLine: Record<string, number> // read system calls per line, by process
}

// One run of a path: its lines, the time from first send to last receipt,
// each line's latency.
interface Run {
    n: number
    ms: number
    lat: number[]
    cpuMs: Record<string, number>
    writes: Record<string, number>
    reads: Record<string, number>
}

// Sends n lines, `inflight` outstanding at most; the receiver calls back
// with each line. Time: first send to last receipt.
async function flow(n: number, inflight: number, send: (line: string) => Promise<unknown>, onLine: (cb: (line: string) => void) => void): Promise<Run> {
    const sentAt = new Float64Array(n)
    const lat: number[] = []
    let got = 0
    let done!: () => void
    const all = new Promise<void>((r) => (done = r))
    onLine((line) => {
        const i = Number(line.slice(1, line.indexOf(" ")))
        if (!(i >= 0 && i < n)) return
        lat.push(performance.now() - sentAt[i]!)
        if (++got === n) done()
    })
    const start = performance.now()
    let next = 0
    const worker = async () => {
        while (next < n) {
            const i = next++
            sentAt[i] = performance.now()
            await send(`m${i} ${"x".repeat(24)}`)
        }
    }
    await Promise.all(Array.from({ length: inflight }, worker))
    await within(all, 300000, `${n} lines received`)
    return { n, ms: performance.now() - start, lat, cpuMs: {}, writes: {}, reads: {} }
}

// The CPU (ms, /proc ticks of 10 ms) and system calls each process spent on `run`.
async function measured(pids: Record<string, number>, run: () => Promise<Run>): Promise<Run> {
    const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, procUsage(pid)]))
    const r = await run()
    for (const [k, pid] of Object.entries(pids)) {
        const u = procUsage(pid)
        r.cpuMs[k] = u.cpuMs - before[k]!.cpuMs
        r.writes[k] = u.writes - before[k]!.writes
        r.reads[k] = u.reads - before[k]!.reads
    }
    return r
}

// The runs of one path as one row: all lines over all their time.
function total(runs: Run[]): Flow {
    const n = runs.reduce((a, r) => a + r.n, 0)
    const ms = runs.reduce((a, r) => a + r.ms, 0)
    const s = summarize(runs.flatMap((r) => r.lat))
    const per = (what: "cpuMs" | "writes" | "reads", scale: number) => Object.fromEntries(Object.keys(runs[0]!.cpuMs).map((k) => [k, Math.round((runs.reduce((a, r) => a + r[what][k]!, 0) / n) * scale * 10) / 10]))
    return { n, perSec: (n / ms) * 1000, p99: s.p99, median: s.median, cpuUsPerLine: per("cpuMs", 1000), writesPerLine: per("writes", 1), readsPerLine: per("reads", 1) }
}

async function mqtt(url: string, clientId: string): Promise<MqttClient> {
    const c = mqttConnect(url, { clientId, clean: true, reconnectPeriod: 0 })
    await within(new Promise<void>((r) => c.once("connect", () => r())), 10000, `${clientId} connected`)
    return c
}

function perProcess(c: Record<string, number>, digits: number): string {
    return ["gateway", "broker", "clients"].map((k) => c[k]!.toFixed(digits)).join(" / ")
}

// Where the processes run. One at a time, a line's rate is set by its
// wake-ups from one process to the next, and on a small VM a wake-up on
// another CPU costs several times one on the same CPU: so which processes
// the kernel happens to put together decides the one-at-a-time rows (here
// the gateway row read about 45-176 % of its reference by placement alone).
// "deployment" pins them as a deployment has them: boards and apps
// (this process) on their machines, one CPU; the gateway and the broker
// on the server, another. Both the gateway row and its reference then
// cross the same "network" (one CPU to the other) and share the same
// server CPU.
interface Layout {
    name: string
    pinned: boolean // clients on the first CPU this process may use, gateway and broker on the second
}

const LAYOUTS: Layout[] = [
    { name: "as the kernel places them", pinned: false },
    { name: "deployment: boards and apps on one CPU, gateway and broker on another", pinned: true },
]

// Lines each path runs before it is measured.
const WARM_LINES = 15000

// The CPUs `pid` may run on, as taskset lists them ("0-3,6"); undefined without taskset.
function affinity(pid: number): string | undefined {
    try {
        const out = execFileSync("taskset", ["-cp", String(pid)], { encoding: "utf8", timeout: 5000 })
        return /:\s*([0-9,-]+)\s*$/.exec(out)?.[1]
    } catch {
        return undefined
    }
}

// The CPU numbers of a taskset list.
function cpuNumbers(list: string): number[] {
    return list.split(",").flatMap((part) => {
        const [a, b] = part.split("-").map(Number)
        return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i)
    })
}

// Pins `pid` and all its threads to `cpus` (a taskset list); false where it cannot.
function pin(pid: number, cpus: string): boolean {
    try {
        execFileSync("taskset", ["-a", "-cp", cpus, String(pid)], { stdio: "ignore", timeout: 5000 })
        return true
    } catch {
        return false
    }
}

// What a process in the path costs without any protocol: the bare round
// trip between two processes, and the same through a third that forwards
// the bytes (a gateway's position): what the gateway rows pay for being
// one more process on the path, apart from the broker.
async function relayCost(n: number): Promise<{ direct: Summary; relayed: Summary }> {
    return withWorkers(async (keep) => {
        const server = keep(await startWorker("raw", 300000))
        const relay = keep(await startWorker("raw", 300000))
        const client = keep(await startWorker("raw", 300000))
        const { port } = await server.call<{ port: number }>("listen")
        const via = await relay.call<{ port: number }>("relay", { port })
        await client.call("connect", { port })
        const direct = await client.call<Summary>("rtt", { n, warmup: 2000 }, 300000)
        await client.call("connect", { port: via.port })
        const relayed = await client.call<Summary>("rtt", { n, warmup: 2000 }, 300000)
        return { direct, relayed }
    })
}

export async function mqttGateway(ctx: Context): Promise<SectionResult> {
    const scale = ctx.quick ? 0.1 : 1
    const broker = new Mosquitto()
    await broker.start()
    const port = await freePort()
    const gw = spawn(process.execPath, [join(ROOT, "bin/devs-iot.js"), "gateway", "--mqtt", broker.url, "--port", String(port), "--name", "bench", "--log-level", "warn"], { stdio: ["ignore", "ignore", "inherit"] })
    const clients: MqttClient[] = []
    let board: Client | undefined
    // The CPUs this process may use: the pinned layout takes the first two,
    // and every process goes back on all of them after (this process runs
    // the later sections), whatever happens here.
    const allowed = affinity(process.pid)
    const cpus = allowed === undefined ? [] : cpuNumbers(allowed)
    const unpin = () => {
        if (allowed !== undefined) for (const pid of [process.pid, gw.pid!, broker.pid]) pin(pid, allowed)
    }
    try {
        const sub = await mqtt(broker.url, "bench-sub")
        const pub = await mqtt(broker.url, "bench-pub")
        clients.push(sub, pub)
        let onUp: (l: string) => void = () => undefined
        let onRef: (l: string) => void = () => undefined
        sub.on("message", (t, p) => (t === "bench/ref" ? onRef(p.toString()) : onUp(p.toString())))
        await sub.subscribeAsync("devs-iot/bench-b/up", { qos: 2 })
        await sub.subscribeAsync("bench/ref", { qos: 2 })
        const online = new Promise<void>((r) => pub.on("message", (_t, p) => p.toString() === "online" && r()))
        await pub.subscribeAsync("devs-iot/bench-b/status", { qos: 1 })
        board = new Client({ id: "bench-b", port, backoffFirst: 50, backoffCap: 500 }).start()
        await within(board.connected(), 20000, "board connected to the gateway")
        await within(online, 20000, "board session online")
        let onDown: (l: string) => void = () => undefined
        const b = board
        void (async () => {
            for await (const l of b) onDown(l)
        })()
        const refPub = async (qos: 1 | 2, line: string) => pub.publishAsync("bench/ref", line, { qos })
        const data: Record<string, Flow> = {}
        const tables: SectionResult["tables"] = []
        for (const layout of LAYOUTS) {
            if (layout.pinned && cpus.length < 2) {
                ctx.log(`mqtt: layout "${layout.name}" skipped: needs 2 CPUs and taskset`)
                continue
            }
            if (layout.pinned && !(pin(process.pid, String(cpus[0])) && pin(gw.pid!, String(cpus[1])) && pin(broker.pid, String(cpus[1]))))
                throw new Error(`mqtt: taskset could not pin the processes for layout "${layout.name}"`)
            const key = layout.pinned ? "deployment_" : ""
            const rows: Array<[string, Flow, Flow | undefined]> = []
            // Each path runs in ROUNDS slices, a reference slice before each
            // gateway slice, so that load from elsewhere on this shared machine
            // falls on both alike.
            const ROUNDS = 4
            for (const inflight of [1, 64]) {
                // Every path gets the same lines and the same warm-up: a path
                // measured cold (JIT) or in short slices (filling and draining
                // 64 in flight is a larger share of a short one) reads slower
                // than it is. The gateway's path takes the longest to warm:
                // one at a time it doubled its rate over its first 10,000 lines
                // (with V8's optimizing compiler off it stays at half).
                const n = Math.round(((inflight === 1 ? 5000 : 40000) * scale) / ROUNDS)
                const warm = Math.round(WARM_LINES * scale)
                ctx.log(`mqtt: ${layout.name}: ${ROUNDS} x ${n} lines on each path, ${inflight} in flight`)
                const sendDown = (l: string) => pub.publishAsync("devs-iot/bench-b/down", l, { qos: 1 })
                // Warm-up, not counted.
                await flow(warm, inflight, (l) => refPub(2, l), (cb) => (onRef = cb))
                await flow(warm, inflight, (l) => b.write(l, { wait: inflight === 1 }), (cb) => (onUp = cb))
                await flow(warm, inflight, (l) => refPub(1, l), (cb) => (onRef = cb))
                await flow(warm, inflight, sendDown, (cb) => (onDown = cb))
                const pids = { gateway: gw.pid!, broker: broker.pid, clients: process.pid }
                const runs: Record<"ref2" | "up" | "ref1" | "down", Run[]> = { ref2: [], up: [], ref1: [], down: [] }
                for (let r = 0; r < ROUNDS; r++) {
                    runs.ref2.push(await measured(pids, () => flow(n, inflight, (l) => refPub(2, l), (cb) => (onRef = cb))))
                    runs.up.push(await measured(pids, () => flow(n, inflight, (l) => b.write(l, { wait: inflight === 1 }), (cb) => (onUp = cb))))
                    runs.ref1.push(await measured(pids, () => flow(n, inflight, (l) => refPub(1, l), (cb) => (onRef = cb))))
                    runs.down.push(await measured(pids, () => flow(n, inflight, sendDown, (cb) => (onDown = cb))))
                }
                const ref2 = total(runs.ref2)
                const up = total(runs.up)
                const ref1 = total(runs.ref1)
                const down = total(runs.down)
                data[`${key}ref2_${inflight}`] = ref2
                data[`${key}up_${inflight}`] = up
                data[`${key}ref1_${inflight}`] = ref1
                data[`${key}down_${inflight}`] = down
                rows.push([`MQTT.js pub -> sub, QoS 2, ${inflight} in flight (reference)`, ref2, undefined])
                rows.push([`board -> gateway -> subscriber (QoS 2), ${inflight} in flight`, up, ref2])
                rows.push([`MQTT.js pub -> sub, QoS 1, ${inflight} in flight (reference)`, ref1, undefined])
                rows.push([`publisher (QoS 1) -> gateway -> board, ${inflight} in flight`, down, ref1])
            }
            tables.push({
                title: `The MQTT gateway with Mosquitto 2.0, processes ${layout.name} (lines of 32 bytes; rate from first send to last receipt; latency send to receipt)`,
                head: ["path", "lines/s", "median", "p99", "CPU us/line: gateway / broker / clients", "write calls/line: gateway / broker / clients", "target", "met"],
                rows: rows.map(([label, f, ref]) => [label, int(f.perSec), ms(f.median), ms(f.p99), perProcess(f.cpuUsPerLine, 0), perProcess(f.writesPerLine, 2), ref ? `>= ${int(ref.perSec * 0.8)} (80 %)` : "", ref ? met(f.perSec >= ref.perSec * 0.8) : ""]),
            })
        }
        unpin()
        const hops = await relayCost(Math.round(20000 * scale))
        return {
            name: "mqtt",
            data: { ...data, hops },
            tables: [
                ...tables,
                {
                    title: "One more process on the path, one at a time: plain TCP, a 32-byte line and a 2-byte ACK (Node processes, 20,000 round trips each)",
                    head: ["path", "round trips/s", "median", "p99", "of direct"],
                    rows: [
                        ["client -> server, direct", int(1000 / hops.direct.mean), ms(hops.direct.median), ms(hops.direct.p99), ""],
                        ["client -> relay process -> server (it forwards bytes both ways)", int(1000 / hops.relayed.mean), ms(hops.relayed.median), ms(hops.relayed.p99), `${Math.round((hops.direct.mean / hops.relayed.mean) * 100)} %`],
                    ],
                },
            ],
        }
    } finally {
        unpin()
        await board?.close()
        for (const c of clients) c.end(true)
        if (gw.exitCode === null && gw.pid) process.kill(gw.pid, "SIGKILL")
        await broker.close()
    }
}
