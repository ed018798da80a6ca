// The soak's runner: a server process, Node client processes and boards in the
// simulator, each client behind its own FaultProxy, all on loopback. It
// injects faults, collects every end's log with arrival times, and stops every
// process it started by its pid.
import { spawn, type ChildProcess } from "node:child_process"
import { createInterface } from "node:readline"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { buildSimImage, runSim, type SimImage, type SimRun } from "../../src/server/cli/sim.js"
import { FaultProxy, type Direction } from "../kit/proxy.js"
import { freePort } from "../kit/util.js"
import { check, parseSoakLine, type LogRecord } from "./checker.js"

const PEER = join(dirname(fileURLToPath(import.meta.url)), "peer.js")

export const FAULT_KINDS = ["cut", "reset", "midline", "ackloss", "stall", "refuse", "netloss", "split", "latency", "server-kill", "client-restart"] as const
export type FaultKind = (typeof FAULT_KINDS)[number]

export interface Fault {
    kind: FaultKind
    target: string // a client id, or "all"
    detail: string
    start: number
    cleared: number
}

export interface SoakOptions {
    nodes: number // Node client processes
    v1?: number // original micropython-iot boards (the compatibility peer), as processes
    boards: number // boards in the simulator
    timeout: number // every end's link timeout, ms
    interval: number // ms between lines of each stream
    serverArgs?: string[] // more arguments for the server process (peer.js server)
    others?: string[] // ids of other honest clients the server sends soak traffic to (the attack run's probe)
    stateDir?: string // Node ends keep their delivery state in <stateDir>/<who> (peer.js --state)
    stateSync?: boolean // ... with --state-sync
    batch?: boolean // Node ends read with readlines() (peer.js --batch)
    log?: (s: string) => void
}

type Kind = "node" | "board" | "v1"

interface End {
    id: string
    kind: Kind
    life: number
    proc?: ChildProcess
    sim?: SimRun
    proxy?: FaultProxy
    done: boolean
}

// A fixed random sequence from a seed (an LCG), so a fault sequence can be replayed.
export function seeded(seed: number): () => number {
    let s = seed >>> 0
    return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32)
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export class Soak {
    readonly records: LogRecord[] = []
    readonly faults: Fault[] = []
    private ends = new Map<string, End>()
    private server: End = { id: "srv", kind: "node", life: -1, done: false }
    private serverPort = 0
    private honest: string[] = [] // the ids the server sends soak traffic to
    private images = new Map<string, SimImage>()
    private waiters = new Set<() => void>()
    private started = new Map<string, number>() // who -> when its current life began
    private all = new Set<ChildProcess>()
    private onExit = () => this.killAll()

    constructor(readonly o: SoakOptions) {
        process.on("exit", this.onExit)
    }

    // Server exits the harness did not cause (crashes), with their code or signal.
    readonly serverCrashes: string[] = []

    get port(): number {
        return this.serverPort
    }

    serverPid(): number | undefined {
        return this.server.proc?.pid
    }

    ids(): string[] {
        return [...this.ends.keys()]
    }

    kindOf(id: string): Kind {
        return this.ends.get(id)!.kind
    }

    async start(): Promise<void> {
        const ids: Array<[string, Kind]> = []
        for (let i = 0; i < this.o.nodes; i++) ids.push([`n${i + 1}`, "node"])
        for (let i = 0; i < this.o.boards; i++) ids.push([`b${i + 1}`, "board"])
        for (let i = 0; i < (this.o.v1 ?? 0); i++) ids.push([`v${i + 1}`, "v1"])
        this.honest = [...ids.map(([id]) => id), ...(this.o.others ?? [])]
        this.serverPort = await freePort()
        await this.startServer()
        for (const [id, kind] of ids) {
            const proxy = new FaultProxy(this.serverPort)
            await proxy.listen()
            this.ends.set(id, { id, kind, life: -1, proxy, done: false })
        }
        // Builds one at a time: the DeviceScript compiler is the slow part.
        for (const e of this.ends.values()) {
            if (e.kind === "board")
                this.images.set(
                    e.id,
                    await buildSimImage({ app: "soak", id: e.id, host: "127.0.0.1", port: e.proxy!.port, timeout: this.o.timeout, interval: this.o.interval })
                )
        }
        await Promise.all([...this.ends.values()].map((e) => this.startClient(e)))
        await Promise.all(this.ids().map((id) => this.until(() => this.linkUp(id), 60000, `${id} up`)))
    }

    // ---- faults

    async inject(kind: FaultKind, target: string, rnd: () => number = Math.random): Promise<Fault> {
        const T = this.o.timeout
        const f: Fault = { kind, target, detail: "", start: Date.now(), cleared: 0 }
        const proxy = target === "all" ? undefined : this.ends.get(target)!.proxy!
        const dir: Direction = rnd() < 0.5 ? "up" : "down"
        const hold = async (ms: number, on: () => void, off: () => void) => {
            f.detail = `${Math.round(ms)} ms`
            on()
            await sleep(ms)
            off()
        }
        switch (kind) {
            case "cut":
                proxy!.cut("fin")
                break
            case "reset":
                proxy!.cut("rst")
                break
            case "midline":
            case "ackloss": {
                f.detail = dir
                const done = kind === "midline" ? proxy!.cutMidLine(dir, "fin") : proxy!.dropAck(dir)
                const ok = await Promise.race([done.then(() => true), sleep(3 * T).then(() => false)])
                if (!ok) (proxy!.clear(), (f.detail += kind === "midline" ? ", no line passed" : ", no ACK passed"))
                break
            }
            case "stall": // shorter than timeout: the link may survive
                await hold(T * (0.3 + 0.5 * rnd()), () => proxy!.stall(true), () => proxy!.stall(false))
                break
            case "netloss": // longer than timeout: both ends see an outage; reconnects go nowhere
                await hold(T * (1.5 + 1.5 * rnd()), () => proxy!.stall(true), () => proxy!.stall(false))
                break
            case "refuse":
                await hold(500 + 2500 * rnd(), () => (proxy!.refuse(true), proxy!.cut("rst")), () => proxy!.refuse(false))
                break
            case "split":
                await hold(1000 + 1000 * rnd(), () => proxy!.splitBytes(true), () => proxy!.splitBytes(false))
                break
            case "latency": {
                const ms = 20 + Math.round(180 * rnd())
                await hold(1000 + 1000 * rnd(), () => proxy!.delay(ms), () => proxy!.delay(0))
                f.detail = `${ms} ms for ${f.detail}`
                break
            }
            case "server-kill":
                await this.kill(this.server)
                await sleep(100 + 400 * rnd())
                await this.startServer()
                break
            case "client-restart": {
                const e = this.ends.get(target)!
                await this.kill(e)
                await this.startClient(e)
                break
            }
        }
        f.cleared = kind === "server-kill" ? this.started.get("srv")! : kind === "client-restart" ? this.started.get(target)! : Date.now()
        this.faults.push(f)
        this.o.log?.(`fault ${kind} on ${target}${f.detail ? ` (${f.detail})` : ""}`)
        return f
    }

    // The link of `id` carries lines both ways again after `since`.
    async recovered(id: string, since: number, ms: number): Promise<void> {
        await this.until(() => this.deliveredAfter(id, since, "R") && this.deliveredAfter(id, since, "S"), ms, `${id}'s link back after a fault`)
    }

    linkUp(id: string): boolean {
        const e = this.ends.get(id)!
        return this.records.some((r) => r.who === id && r.life === e.life && r.kind === "R")
    }

    // Next line read on `id`'s link (either end) after `since`, or undefined.
    firstDelivery(id: string, since: number): number | undefined {
        for (const r of this.records) {
            if (r.t < since || r.kind !== "R") continue
            if (r.who === id || (r.who === "srv" && parseSoakLine(r.text)?.from === id)) return r.t
        }
        return undefined
    }

    // ---- the end

    // Stops the writers, waits until every end has nothing pending, then
    // stops every process. Returns false if some end never finished.
    async stop(ms = 60000): Promise<boolean> {
        this.server.proc?.stdin?.write("stop\n")
        const ok = await this.until(() => this.server.done && [...this.ends.values()].every((e) => e.done), ms, "every end done").then(
            () => true,
            async (e: Error) => {
                const late = [this.server, ...this.ends.values()].filter((x) => !x.done)
                this.o.log?.(`${e.message}; not done: ${late.map((x) => x.id).join(", ")}`)
                // Each late end says what its links hold ("@I dump ...", logged by take()).
                const asked = this.records.length
                for (const x of late) x.proc?.stdin?.write("dump\n")
                const dumped = (who: string) => this.records.some((r, i) => i >= asked && r.who === who && r.kind === "I" && r.text.startsWith("dump"))
                await this.until(() => late.every((x) => x.proc === undefined || dumped(x.id)), 2000, "").catch(() => {})
                return false
            }
        )
        // Every completed write is read by now, unless lost: their logs may
        // still be on their way through the pipes.
        await this.until(() => this.allRead(), 2000, "").catch(() => {})
        await this.close()
        return ok
    }

    async close(): Promise<void> {
        for (const e of [this.server, ...this.ends.values()]) await this.kill(e)
        for (const e of this.ends.values()) await e.proxy?.close()
        for (const i of this.images.values()) i.remove()
        this.images.clear()
        process.off("exit", this.onExit)
    }

    // ---- processes

    private async startServer(): Promise<void> {
        const e = this.server
        e.life++
        e.done = false
        const life = e.life
        const args = ["server", "--port", String(this.serverPort), "--timeout", String(this.o.timeout), "--interval", String(this.o.interval), "--ids", this.honest.join(","), ...this.stateArgs("srv"), ...(this.o.serverArgs ?? [])]
        const p = this.spawnPeer(args, "srv", life)
        e.proc = p
        p.on("exit", (code, signal) => {
            if (e.proc === p) this.serverCrashes.push(`exit ${code ?? signal}`)
        })
        await this.startedLife("srv", life, "listening", 20000)
    }

    private async startClient(e: End): Promise<void> {
        e.life++
        e.done = false
        const life = e.life
        if (e.kind !== "board") {
            const args = [e.kind === "node" ? "client" : "v1client", "--id", e.id, "--port", String(e.proxy!.port), "--timeout", String(this.o.timeout), "--interval", String(this.o.interval), ...(e.kind === "node" ? this.stateArgs(e.id) : [])]
            e.proc = this.spawnPeer(args, e.id, life)
        } else {
            e.sim = await runSim(this.images.get(e.id)!.image, (line) => this.take(e.id, life, line))
            this.all.add(e.sim.child)
            e.proc = e.sim.child
        }
        await this.startedLife(e.id, life, "start", 30000)
    }

    private stateArgs(who: string): string[] {
        const batch = this.o.batch ? ["--batch"] : []
        if (this.o.stateDir === undefined) return batch
        return ["--state", join(this.o.stateDir, who), ...(this.o.stateSync ? ["--state-sync"] : []), ...batch]
    }

    private spawnPeer(args: string[], who: string, life: number): ChildProcess {
        const p = spawn(process.execPath, [PEER, ...args], { stdio: ["pipe", "pipe", "pipe"] })
        this.all.add(p)
        p.on("exit", () => this.all.delete(p))
        p.stdin!.on("error", () => {}) // a "stop" or "dump" to a peer that just died (EPIPE)
        createInterface({ input: p.stdout! }).on("line", (l) => this.take(who, life, l))
        p.stderr!.on("data", (b: Buffer) => this.o.log?.(`${who}: ${b.toString().trimEnd()}`))
        return p
    }

    private async kill(e: End): Promise<void> {
        const p = e.proc
        e.proc = undefined
        if (!p) return
        if (e.sim) {
            await e.sim.stop()
            this.all.delete(p)
            e.sim = undefined
            return
        }
        if (p.exitCode === null && p.signalCode === null) {
            const gone = new Promise((r) => p.once("exit", r))
            if (p.pid) process.kill(p.pid, "SIGKILL")
            await gone
        }
    }

    private killAll(): void {
        for (const p of this.all) if (p.pid && p.exitCode === null) p.kill("SIGKILL")
    }

    private take(who: string, life: number, line: string): void {
        const m = /^@([SRIT]) (.*)$/.exec(line)
        if (!m) return
        const kind = m[1] as LogRecord["kind"]
        this.records.push({ t: Date.now(), who, life, kind, text: m[2]! })
        if (kind === "I" && m[2]!.startsWith("done")) (who === "srv" ? this.server : this.ends.get(who)!).done = true
        if (kind === "I" && (m[2]!.startsWith("stopping") || m[2]!.startsWith("dump") || m[2]!.startsWith("stranger"))) this.o.log?.(`${who}: ${m[2]}`)
        for (const w of [...this.waiters]) w()
    }

    // When the current life of `who` logged its first line ("listening", "start").
    private async startedLife(who: string, life: number, first: string, ms: number): Promise<void> {
        const mine = (r: LogRecord) => r.who === who && r.life === life && r.kind === "I" && r.text.startsWith(first)
        await this.until(() => this.records.some(mine), ms, `${who} ${first}`)
        this.started.set(who, this.records.find(mine)!.t)
    }

    private allRead(): boolean {
        const r = check(this.records)
        return r.qos.up.lost + r.qos.down.lost + r.v1.qos.up.lost + r.v1.qos.down.lost === 0
    }

    private deliveredAfter(id: string, since: number, kind: "S" | "R"): boolean {
        for (let i = this.records.length - 1; i >= 0 && this.records[i]!.t >= since; i--) {
            const r = this.records[i]!
            if (r.kind === kind && r.who === id) return true
        }
        return false
    }

    // Resolves when `cond` holds, checked at each log line (every condition
    // here is about the logs).
    private until(cond: () => boolean, ms: number, what: string): Promise<void> {
        return new Promise((resolve, reject) => {
            if (cond()) return resolve()
            const test = () => {
                if (!cond()) return
                this.waiters.delete(test)
                clearTimeout(limit)
                resolve()
            }
            const limit = setTimeout(() => (this.waiters.delete(test), reject(new Error(`timed out after ${ms} ms: ${what}`))), ms)
            this.waiters.add(test)
        })
    }
}
