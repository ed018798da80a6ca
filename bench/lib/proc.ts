// Worker processes of a run: each is a child `node` process with an IPC
// channel, bounded in time (its own limit, and every call has one), and
// stopped by its pid. stopAll() kills whatever is left (the runner calls it
// in a finally and at its global deadline).
import { fork, type ChildProcess } from "node:child_process"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Event, Reply, Request } from "./rpc.js"

const WORKERS = join(dirname(fileURLToPath(import.meta.url)), "../workers")
const live = new Set<Worker>()

export class Worker {
    readonly child: ChildProcess
    readonly exited: Promise<number | null>
    private nextId = 1
    private pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>()
    private listeners: Array<(e: Event) => void> = []

    // `name`: a script in bench/workers (without .js); `maxMs`: the worker's own limit.
    constructor(readonly name: string, maxMs: number, execArgv: string[] = []) {
        this.child = fork(join(WORKERS, `${name}.js`), [String(maxMs)], {
            stdio: ["ignore", "inherit", "inherit", "ipc"],
            execArgv,
        })
        live.add(this)
        this.exited = new Promise((resolve) =>
            this.child.on("exit", (code, signal) => {
                live.delete(this)
                const err = new Error(`worker ${name} exited (${signal ?? code})`)
                for (const p of this.pending.values()) p.reject(err)
                this.pending.clear()
                resolve(code)
            })
        )
        this.child.on("message", (m: Reply | Event) => {
            if ("event" in m) {
                for (const l of this.listeners) l(m)
                return
            }
            const p = this.pending.get(m.id)
            if (!p) return
            this.pending.delete(m.id)
            if (m.ok) p.resolve(m.result)
            else p.reject(new Error(`worker ${name}: ${m.error}`))
        })
    }

    get pid(): number {
        return this.child.pid ?? -1
    }

    // Calls `op` in the worker; rejects after `ms`.
    call<T = unknown>(op: string, args: Record<string, unknown> = {}, ms = 60000): Promise<T> {
        const id = this.nextId++
        const req: Request = { id, op, args }
        return new Promise<T>((resolve, reject) => {
            const t = setTimeout(() => {
                this.pending.delete(id)
                reject(new Error(`worker ${this.name}: ${op} took more than ${ms} ms`))
            }, ms)
            this.pending.set(id, {
                resolve: (v) => (clearTimeout(t), resolve(v)),
                reject: (e) => (clearTimeout(t), reject(e)),
            })
            this.child.send(req)
        })
    }

    onEvent(l: (e: Event) => void): void {
        this.listeners.push(l)
    }

    // SIGTERM (a server closes its links with FIN), SIGKILL after `graceMs`.
    async stop(graceMs = 2000): Promise<void> {
        if (this.child.exitCode !== null || this.child.signalCode !== null) return
        kill(this.pid, "SIGTERM")
        const t = setTimeout(() => kill(this.pid, "SIGKILL"), graceMs)
        await this.exited
        clearTimeout(t)
    }
}

function kill(pid: number, sig: NodeJS.Signals): void {
    try {
        if (pid > 0) process.kill(pid, sig)
    } catch {}
}

// Starts a worker and waits until it answers.
export async function startWorker(name: string, maxMs: number, execArgv: string[] = []): Promise<Worker> {
    const w = new Worker(name, maxMs, execArgv)
    await w.call("ping", {}, 20000)
    return w
}

// Kills every worker still running, by pid.
export function stopAll(): void {
    for (const w of live) kill(w.pid, "SIGKILL")
}

// Runs `fn` with workers it registers, stopping each in the end.
export async function withWorkers<T>(fn: (keep: <W extends Worker>(w: W) => W) => Promise<T>): Promise<T> {
    const mine: Worker[] = []
    try {
        return await fn((w) => (mine.push(w), w))
    } finally {
        await Promise.all(mine.map((w) => w.stop()))
    }
}

// A fleet's boards come from as many addresses as there are boards; the
// bench's idle clients all come from 127.0.0.1, where the per-address limit
// on new ids (newIdRate, newIdBurst) would pace the ramp and, once over it,
// penalize the address. Lifted for the scale and status benches only.
export const ONE_ADDRESS_FLEET = { newIdRate: 1000000, newIdBurst: 10000000 }

// CPU ms (user + system), RSS (MB), and read and write system calls
// (socket ones included) of a process, from /proc.
export function procUsage(pid: number): { cpuMs: number; rssMB: number; reads: number; writes: number } {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf-8")
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const ticks = Number(f[11]) + Number(f[12])
    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf-8"))
    const io = readFileSync(`/proc/${pid}/io`, "utf-8")
    const reads = /syscr:\s+(\d+)/.exec(io)
    const writes = /syscw:\s+(\d+)/.exec(io)
    return { cpuMs: ticks * 10, rssMB: rss ? Number(rss[1]) / 1024 : NaN, reads: reads ? Number(reads[1]) : NaN, writes: writes ? Number(writes[1]) : NaN }
}
