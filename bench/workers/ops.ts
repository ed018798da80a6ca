// What a benchmark does with one end of a link, the same at the server (a
// Connection) and at a Node client: timed round trips, sending N lines in a
// given mode, and counting what arrives.
import type { WriteOptions } from "../../src/server/index.js"
import { emit, wallMs } from "../lib/rpc.js"
import { summarize, type Summary } from "../lib/stats.js"
import { isControl, PAYLOAD } from "../lib/payload.js"

export interface LineEnd extends AsyncIterable<string> {
    write(line: string, opts?: WriteOptions): Promise<void>
    readlines?(): Promise<string[]> // devs-iot ends: every line there is, in one step
}

export interface SendMode {
    qos: boolean
    wait: boolean
    inflight: number // writes outstanding at once (1 with wait)
}

// Reads every line as it arrives, so the peer's qos writes are never held
// back by this end, and counts them. Control lines are passed on to the
// runner as "line" events. One line per step (for await), or with `batch`
// every line there is per step (readlines()).
export class Counter {
    count = 0
    private batch = false
    private target = Infinity
    private lastAt = 0
    private done: ((at: number) => void) | undefined

    constructor(end: LineEnd, readonly id: string) {
        void this.run(end)
    }

    // The next `n` lines are awaited by finished(); read in batches from
    // the next step on with `batch`.
    arm(n: number, batch = false): void {
        this.target = this.count + n
        this.batch = batch
    }

    // Resolves with the wall-clock ms at which the armed count was reached.
    finished(): Promise<number> {
        if (this.count >= this.target) return Promise.resolve(this.lastAt)
        return new Promise((resolve) => (this.done = resolve))
    }

    private async run(end: LineEnd): Promise<void> {
        const it = end[Symbol.asyncIterator]()
        try {
            while (true) {
                if (this.batch && end.readlines) {
                    for (const line of await end.readlines()) this.got(line)
                    continue
                }
                const r = await it.next()
                if (r.done) return
                this.got(r.value)
            }
        } catch {}
    }

    private got(line: string): void {
        this.lastAt = wallMs()
        if (isControl(line)) {
            emit({ event: "line", id: this.id, line, at: this.lastAt })
            return
        }
        if (++this.count === this.target && this.done) {
            this.done(this.lastAt)
            this.done = undefined
        }
    }
}

// `n` qos writes with wait, one after another, each timed from the call to
// its resolution (the peer's ACK), after `warmup` untimed ones.
export async function roundTrips(end: LineEnd, n: number, warmup: number): Promise<Summary> {
    for (let i = 0; i < warmup; i++) await end.write(PAYLOAD)
    const samples = new Float64Array(n)
    for (let i = 0; i < n; i++) {
        const t0 = performance.now()
        await end.write(PAYLOAD)
        samples[i] = performance.now() - t0
    }
    return summarize(samples)
}

// Writes `n` lines, keeping `mode.inflight` writes outstanding. Returns the
// wall-clock ms of the first write and the sender's own elapsed ms (until
// every write resolved).
export async function sendMany(end: LineEnd, n: number, mode: SendMode): Promise<{ start: number; ms: number }> {
    const opts: WriteOptions = { qos: mode.qos, wait: mode.wait }
    const start = wallMs()
    const t0 = performance.now()
    await new Promise<void>((resolve, reject) => {
        let next = 0
        let done = 0
        const launch = () => {
            while (next < n && next - done < mode.inflight) {
                next++
                end.write(PAYLOAD, opts).then(() => {
                    if (++done === n) resolve()
                    else launch()
                }, reject)
            }
        }
        launch()
    })
    return { start, ms: performance.now() - t0 }
}

// sendMany, timing each write from its call to its resolution (the peer's
// ACK with qos). The first `cold` writes are summarized apart: on a fresh
// link they show what the handshake costs the first window.
export async function sendTimed(end: LineEnd, n: number, mode: SendMode, cold = 0): Promise<{ start: number; ms: number; latency: Summary; cold: Summary | undefined }> {
    const opts: WriteOptions = { qos: mode.qos, wait: mode.wait }
    const samples = new Float64Array(n)
    const start = wallMs()
    const t0 = performance.now()
    await new Promise<void>((resolve, reject) => {
        let next = 0
        let done = 0
        const launch = () => {
            while (next < n && next - done < mode.inflight) {
                const i = next++
                const at = performance.now()
                end.write(PAYLOAD, opts).then(() => {
                    samples[i] = performance.now() - at
                    if (++done === n) resolve()
                    else launch()
                }, reject)
            }
        }
        launch()
    })
    const ms = performance.now() - t0
    return { start, ms, latency: summarize(samples.subarray(cold)), cold: cold > 0 ? summarize(samples.subarray(0, cold)) : undefined }
}
