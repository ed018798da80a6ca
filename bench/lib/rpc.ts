// The request/response protocol between the bench runner and its worker
// processes, over Node's IPC channel. A request names an operation; the
// worker answers once, with a result or an error. Workers may also send
// events (not answers) at any time.

export interface Request {
    id: number
    op: string
    args: Record<string, unknown>
}

export type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string }

export interface Event {
    event: string
    [k: string]: unknown
}

export type Handlers = Record<string, (args: any) => Promise<unknown> | unknown>

// Worker side: answers requests with `handlers`. The worker exits when the
// runner goes away (IPC closed) or after `maxMs`, whatever it is doing: no
// worker outlives a run.
export function serveRequests(handlers: Handlers, maxMs: number): void {
    const send = (m: Reply | Event) => {
        if (process.connected) process.send!(m)
    }
    process.on("message", async (m: Request) => {
        const h = handlers[m.op]
        if (!h) return send({ id: m.id, ok: false, error: `unknown op ${m.op}` })
        try {
            send({ id: m.id, ok: true, result: (await h(m.args)) ?? null })
        } catch (e) {
            send({ id: m.id, ok: false, error: (e as Error)?.stack ?? String(e) })
        }
    })
    process.on("disconnect", () => process.exit(0))
    setTimeout(() => {
        process.stderr.write(`bench worker ${process.argv[1]}: over its ${maxMs} ms limit, exiting\n`)
        process.exit(3)
    }, maxMs).unref()
}

export function emit(e: Event): void {
    if (process.connected) process.send!(e)
}

// High-resolution wall-clock ms, comparable between processes on one machine.
export function wallMs(): number {
    return performance.timeOrigin + performance.now()
}
