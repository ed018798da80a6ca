// Helpers for tests over loopback: bounded waits, free ports, child processes
// stopped by pid.
import { spawn, type ChildProcess } from "node:child_process"
import { createServer } from "node:net"
import { join } from "node:path"
import { ROOT } from "./devs.js"

// What a test opened, closed after it in reverse order: a file registers
// afterEach(closeAll) and passes servers, clients and sockets to cleanup().
const opened: Array<() => Promise<void> | void> = []

export function onCleanup(close: () => Promise<void> | void): void {
    opened.push(close)
}

export function cleanup<X extends { close(): Promise<void> | void }>(x: X): X {
    opened.push(() => x.close())
    return x
}

export async function closeAll(): Promise<void> {
    for (const c of opened.splice(0).reverse()) await c()
}

// Rejects with `what` when `p` has not settled within `ms`; a function
// `what` is called then, to tell the state at the deadline.
export function within<T>(p: Promise<T>, ms: number, what: string | (() => string)): Promise<T> {
    let t: NodeJS.Timeout
    const limit = new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${typeof what === "string" ? what : what()}`)), ms)
    })
    return Promise.race([p, limit]).finally(() => clearTimeout(t))
}

// Polls `cond` (for state that has no event) until true, or rejects after `ms`.
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const end = Date.now() + ms
    while (!cond()) {
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`)
        await new Promise((r) => setTimeout(r, 5))
    }
}

export async function freePort(): Promise<number> {
    const s = createServer()
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r))
    const a = s.address()
    await new Promise<void>((r) => s.close(() => r()))
    return typeof a === "object" && a ? a.port : 0
}

export interface Cli {
    child: ChildProcess
    stdout: string
    stderr: string
    exited: Promise<number | null>
    waitFor(re: RegExp, ms: number, stream?: "stdout" | "stderr"): Promise<RegExpMatchArray>
    stop(): void
}

// Runs bin/devs-iot.js (in the repository, or `cwd`); the test must stop()
// it (by pid) in a finally/after.
export function cli(args: string[], env: Record<string, string> = {}, cwd = ROOT): Cli {
    const child = spawn(process.execPath, [join(ROOT, "bin/devs-iot.js"), ...args], {
        cwd,
        env: { ...process.env, ...env, NO_COLOR: "1" },
        stdio: ["pipe", "pipe", "pipe"],
    })
    const c: Cli = {
        child,
        stdout: "",
        stderr: "",
        exited: new Promise((resolve) => child.on("exit", (code) => resolve(code))),
        // Fails at once when the process has ended without printing it
        // ("close": its output is all read), and tells what it printed.
        waitFor: (re, ms, stream = "stderr") => {
            const told = () => `${re} in the CLI's ${stream}${ended ? ` (exited: ${child.exitCode ?? child.signalCode})` : ""}:\n${c[stream]}`
            let done = () => {}
            return within(
                new Promise<RegExpMatchArray>((resolve, reject) => {
                    const check = () => {
                        const m = c[stream].match(re)
                        if (m) resolve(m)
                        else if (ended) reject(new Error(`not printed: ${told()}`))
                        return m
                    }
                    child[stream]!.on("data", check)
                    child.on("close", check)
                    done = () => {
                        child[stream]!.off("data", check)
                        child.off("close", check)
                    }
                    check()
                }),
                ms,
                told
            ).finally(() => done())
        },
        stop: () => {
            if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, "SIGKILL")
        },
    }
    let ended = false
    child.stdout!.on("data", (b: Buffer) => (c.stdout += b.toString()))
    child.stderr!.on("data", (b: Buffer) => (c.stderr += b.toString()))
    child.on("close", () => (ended = true))
    return c
}

interface LineEnd {
    write(line: string): Promise<void>
    readline(): Promise<string>
}

// Writes `lines` as qos lines one after another from `from`, and checks that
// `to` reads each once, in order.
export async function sendAndCheck(from: LineEnd, to: LineEnd, lines: string[], ms = 20000): Promise<void> {
    const got: string[] = []
    const reading = (async () => {
        while (got.length < lines.length) got.push(await to.readline())
    })()
    for (const l of lines) await within(from.write(l), ms, `write ${l}`)
    await within(reading, ms, `${lines.length} lines read`)
    if (got.length !== lines.length || got.some((l, i) => l !== lines[i]))
        throw new Error(`lines read differ from those written: ${JSON.stringify(got.slice(0, 5))}...`)
}

// `n` numbered lines from a client to its Connection on `server`, checked.
export async function exchange(server: { clientConn(id: string): Promise<LineEnd> }, client: LineEnd & { id: string }, tag: string, n: number): Promise<void> {
    const conn = await within(server.clientConn(client.id), 3000, "client connected")
    await sendAndCheck(client, conn, Array.from({ length: n }, (_, i) => `${tag}-${i}`), 5000)
}
