// The Node driver of one Link: moves bytes between a net.Socket and the core,
// arms one timer for the core's next deadline, and turns the core's events
// into promises and "status" events. It makes no protocol decision.
//
// Connection (server side) and Client (Node client) are both LinkDrivers, so
// they share one interface: readline(), write(), status(), connected(),
// on("status"), for await.

import { EventEmitter } from "node:events"
import type { Socket } from "node:net"
import { hold, isClosed, Link, LinkError, peerLimit, queuedWrites, readable, settle, untake, unsentBytes, wantsRead, writeAs, type HeldLine, type Kept, type LinkEvent, type Peer } from "../shared/index.js"
import type { Logger } from "./log.js"
import { ReadBudget } from "./budget.js"
import { clock } from "./clock.js"
import type { StateStore } from "./state.js"
import { enlist, refusedWait, type WaitOptions } from "./abort.js"

export interface WriteOptions {
    qos?: boolean // default true: resolves once the peer ACKed
    wait?: boolean // default true (with qos): one qos message in flight, in order
    id?: number // the wire id (1..255), chosen by a relay (the MQTT gateway); default: the next one
}

interface Waiter {
    resolve: () => void
    reject: (e: Error) => void
}

// Bounds on what a peer makes this end hold and do (the server's
// PEER_BOUNDS rows, shared/config.ts).
export interface PeerBounds {
    maxUnsentBytes: number // output held unsent before we stop reading the peer
    unsentTime: number // ms over maxUnsentBytes before the socket is cut
    lineBudget: number // lines a second that bring nothing new
    byteBudget: number // bytes a second in such lines
    floodTime: number // ms over budget, without recovering, before the socket is cut
}

// Bytes one socket may deliver before the event loop gets a turn: a peer
// that sends new lines at full speed to an application that reads them at
// once would otherwise keep one loop iteration busy for libuv's whole read
// burst (about 2 MB, some 150,000 short lines), starving timers and other links.
const TURN_BYTES = 131072

// The budget buckets hold this long's worth: a reconnecting client's resends
// of a full window (duplicates) fit in it.
const BUDGET_BURST_MS = 2000

// What the bounds keep for one socket (an idle id holds none).
interface Guard {
    budget: ReadBudget
    gated: boolean // over the read budget: no line read until it refills
    gateTimer: NodeJS.Timeout | undefined
    unsentSince: number // output over maxUnsentBytes since (ms), or -1
    unsentTimer: NodeJS.Timeout | undefined
}

function clearUnsent(g: Guard): void {
    g.unsentSince = -1
    if (g.unsentTimer) clearTimeout(g.unsentTimer)
    g.unsentTimer = undefined
}

interface Write extends Waiter {
    bytes: number
}

// What went through this end, for the metrics and the status API.
interface Traffic {
    linesOut: number // lines the peer ACKed (qos) or that went to the socket (no qos)
    bytesOut: number
    linesIn: number // lines the application read
    bytesIn: number
    refused: number // writes refused at once (bad line, closed link)
    queueFull: number // ... of which for a full queue (EQUEUEFULL)
    roundTrip: number // smoothed ms from a message's send to its ACK (-1: no sample yet)
}


type Reader = { many: number; resolve: (lines: string | string[]) => void; reject: (e: Error) => void }

// Received lines an end handles itself, ahead of the application's readers
// (the server's OTA requests, ota/admin.ts). `wants` is asked for each line
// before any reader may have it, and must decide from the line alone: a line
// that goes back unread (a failed commit) is asked about again. `take` gets
// the lines it wanted once they are taken for good, in order.
export interface Claim {
    wants(line: string): boolean
    take(line: string): void
}

// The event both ends emit. Only a server's link has "report" and "rekeyed"
// (declared on Connection, with "warning"); a Client adds "rekey".
export declare interface LinkDriver<L extends Link = Link> {
    // The link came up (true), or went down (false, with the reason).
    on(event: "status", listener: (up: boolean, reason?: string) => void): this
    once(event: "status", listener: (up: boolean, reason?: string) => void): this
    off(event: "status", listener: (up: boolean, reason?: string) => void): this
}

// `L`: the end's Link (ClientLink for a Client, ServerLink for a Connection).
export abstract class LinkDriver<L extends Link = Link> extends EventEmitter {
    protected readonly link: L
    protected socket: Socket | undefined
    private logger: Logger
    private logAs: string | undefined // the logger's child for this client id, made on first use
    private timer: NodeJS.Timeout | undefined
    private timerAt = -1
    private blocked = false // socket.write returned false: wait for "drain"
    private corked: Socket | undefined // corked until the next tick
    private releasing = false // a release of taken lines' ACKs is scheduled
    private pumping = false
    private pumpQueued = false // pumpSoon() is due
    private faults = 0 // pump() failures in a row
    private turnBytes = 0 // bytes received since the event loop last had a turn (TURN_BYTES)
    private yielding = false // the socket is paused until the next turn
    private again = false
    private writes: Map<number, Write> | undefined // made on the first write
    private roundTrips = 0 // link.stats.roundTrips already seen
    /** @internal */
    readonly traffic: Traffic = { linesOut: 0, bytesOut: 0, linesIn: 0, bytesIn: 0, refused: 0, queueFull: 0, roundTrip: -1 }
    // Called with each round trip (ms), for a histogram; undefined: none.
    /** @internal */
    onRoundTrip: ((ms: number) => void) | undefined = undefined
    // Waiting reads in call order: readline() (many 0) or readlines(max) (many = max).
    private readers: Reader[] = []
    // Lines read since the last commit, and the readers given them in this
    // pump (resolved once the commit holds): if it fails they go back.
    private takes: Kept[] = []
    private handing: Array<{ r: Reader; got: string | string[] }> = []
    private holders: Array<{ resolve: (h: HeldLine) => void; reject: (e: Error) => void }> = []
    // Lines for `claim`, read since the last commit: handed to it once that holds.
    protected claim: Claim | undefined = undefined
    private claimed: string[] = []
    private upWaiters: Waiter[] = []
    private peerKind: Peer | undefined
    private bounds: PeerBounds | undefined
    private guard: Guard | undefined // the bounds' state for the current socket
    // How often the bounds acted: the read budget ran out, output went over its cap.
    /** @internal */
    readonly bounded = { throttled: 0, outputPaused: 0, cut: 0 }
    // Asked before a debug notice or an outage is logged (server: a shared rate limit).
    protected logGate: ((kind: string) => boolean) | undefined
    // The delivery state (state.ts): committed before the corked output of
    // a tick goes to the socket, and at the end of a turn that gave the
    // application lines, before its code runs on them. Undefined: none (in
    // memory, as the Link keeps it).
    protected state: StateStore | undefined

    // `logAs`: log through a child of `log` for this client id, made when
    // first used (most idle ids never log).
    constructor(link: L, log: Logger, logAs?: string) {
        super()
        this.link = link
        this.logger = log
        this.logAs = logAs
    }

    protected get log(): Logger {
        if (this.logAs !== undefined) {
            this.logger = this.logger.child({ client: this.logAs })
            this.logAs = undefined
        }
        return this.logger
    }

    // ---- the shared interface

    // Resolves when the peer ACKed the line (qos) or it went to the socket
    // (no qos); waits across outages. Rejects with LinkError for a bad line
    // (EEMPTY, ENEWLINE, ETOOLONG, ETYPE), a full queue (EQUEUEFULL), or close
    // (ECLOSED).
    write(line: string, opts?: WriteOptions | null): Promise<void> {
        // null as no options: never a synchronous throw from a call that returns a promise
        const qos = opts?.qos ?? true
        const wait = opts?.wait ?? true
        let ticket: number
        try {
            ticket = writeAs(this.link, line, qos, wait, opts?.id ?? -1)
        } catch (e) {
            this.traffic.refused++
            if ((e as LinkError).code === "EQUEUEFULL") this.traffic.queueFull++
            return Promise.reject(e)
        }
        const bytes = Buffer.byteLength(line)
        const writes = (this.writes ??= new Map())
        const p = new Promise<void>((resolve, reject) => writes.set(ticket, { resolve, reject, bytes }))
        this.pumpSoon()
        return p
    }

    // The next received line, without its "\n"; waits across outages, or
    // until `opts.signal` aborts (no line is taken then).
    readline(opts?: WaitOptions | null): Promise<string> {
        const refused = refusedWait("readline()", opts)
        if (refused) return refused
        const s = this.take()
        if (s !== undefined) return Promise.resolve(s)
        return this.awaitLines<string>(0, opts)
    }

    // A reader that waits for the next line (many 0) or batch.
    private awaitLines<T extends string | string[]>(many: number, opts: WaitOptions | null | undefined): Promise<T> {
        if (isClosed(this.link)) return Promise.reject(new LinkError("ECLOSED", "link is closed"))
        return enlist<T, Reader>(this.readers, opts, (resolve, reject) => ({ many, resolve: resolve as (l: string | string[]) => void, reject }))
    }

    // A received line taken now, or undefined.
    private take(): string | undefined {
        const s = this.readOne(clock())
        if (s === undefined) {
            if (this.claimed.length > 0) this.tookLines() // claimed lines only
            return undefined
        }
        return this.tookLines() ? s : undefined
    }

    // The next received line for the application, read from the Link and
    // noted as taken; the claimed lines before it are taken first.
    private readOne(now: number): string | undefined {
        if (this.claim !== undefined) this.takeClaimed(now)
        return this.readNext(now)
    }

    private readNext(now: number): string | undefined {
        const k = this.link.inbox.peek()
        const s = this.link.read(now)
        if (s === undefined) return undefined
        this.takes.push(k!)
        return s
    }

    // Every received line there is (at least one: waits for one, across
    // outages), at most `max`, in order. The batch is taken in one step: with
    // a state folder one commit records them all before the caller's code
    // runs, where readline() makes one per line. So a process killed while
    // its code works through the batch never gets these lines again: what
    // it must not lose, it handles for the batch as a whole (docs/protocol.md,
    // "Delivery state across restarts").
    readlines(max = Infinity, opts?: WaitOptions | null): Promise<string[]> {
        if (!(max >= 1 && (Number.isInteger(max) || max === Infinity)))
            return Promise.reject(new RangeError(`readlines(max): max must be a whole number of lines, at least 1; got ${String(max)}`))
        const refused = refusedWait("readlines()", opts)
        if (refused) return refused
        const lines = this.takeLines(clock(), max)
        if (lines.length > 0 && this.tookLines()) return Promise.resolve(lines)
        if (lines.length === 0 && this.claimed.length > 0) this.tookLines() // claimed lines only
        return this.awaitLines<string[]>(max, opts)
    }

    // The received lines in batches (readlines()), until the link closes.
    async *batches(max = Infinity): AsyncGenerator<string[]> {
        while (true) {
            try {
                yield await this.readlines(max)
            } catch (e) {
                if ((e as LinkError).code === "ECLOSED") return
                throw e
            }
        }
    }

    // For a relay (the MQTT gateway): the next received line, whose ACK waits
    // for settle(line), however long: the peer resends it until then, and its
    // full window stops it sending more. Waits across outages.
    hold(): Promise<HeldLine> {
        const h = hold(this.link, clock())
        if (h !== undefined) {
            this.countIn(h.payload)
            this.pump()
            return Promise.resolve(h)
        }
        if (isClosed(this.link)) return Promise.reject(new LinkError("ECLOSED", "link is closed"))
        return new Promise((resolve, reject) => this.holders.push({ resolve, reject }))
    }

    // The relay has passed a held line on: ACK it to the peer.
    settle(line: HeldLine): void {
        settle(this.link, line)
        this.pump()
    }

    status(): boolean {
        return this.link.status()
    }

    // Resolves when the link is up (at once if it is), or rejects when `opts.signal` aborts.
    connected(opts?: WaitOptions | null): Promise<void> {
        const refused = refusedWait("connected()", opts)
        if (refused) return refused
        if (this.link.status()) return Promise.resolve()
        if (isClosed(this.link)) return Promise.reject(new LinkError("ECLOSED", "link is closed"))
        return enlist<void, Waiter>(this.upWaiters, opts, (resolve, reject) => ({ resolve, reject }))
    }

    // Links that completed the handshake.
    get connects(): number {
        return this.link.connects
    }

    // The longest line the peer takes (bytes, from its hello), or -1 when it did not say.
    /** @internal */
    get peerLineLimit(): number {
        return peerLimit(this.link)
    }

    // "v1" or "devs-iot" once a link has come up.
    get peer(): Peer | undefined {
        return this.peerKind
    }

    get stats() {
        return this.link.stats
    }

    // Lines waiting to go out (queued or un-ACKed) and received lines not read yet.
    queued(): { out: number; in: number } {
        return { out: queuedWrites(this.link), in: readable(this.link) }
    }

    // The received lines, one per step, until the link closes. Written out
    // rather than as an async generator, which costs three promise turns a
    // line where this costs one (none when a line is there).
    [Symbol.asyncIterator](): AsyncIterator<string> {
        const end = (e: unknown): IteratorResult<string> => {
            if ((e as LinkError).code === "ECLOSED") return { value: undefined, done: true }
            throw e
        }
        return {
            next: () => {
                const s = this.take()
                if (s !== undefined) return Promise.resolve({ value: s, done: false })
                return this.awaitLines<string>(0, undefined).then((value) => ({ value, done: false }), end)
            },
            return: () => Promise.resolve({ value: undefined, done: true }),
        }
    }

    // ---- for subclasses

    // `open`: how the link starts on this socket (default: link.open).
    protected attach(socket: Socket, rest: Buffer[] = [], open?: (now: number) => void): void {
        const now = clock()
        this.socket = socket
        this.blocked = false
        this.resetBounds()
        const b = this.bounds
        if (b) this.guard = { budget: new ReadBudget({ lines: b.lineBudget, bytes: b.byteBudget, burstMs: BUDGET_BURST_MS, floodTime: b.floodTime }), gated: false, gateTimer: undefined, unsentSince: -1, unsentTimer: undefined }
        socket.setNoDelay(true)
        if (open) open(now)
        else this.link.open(now)
        for (const b of rest) this.link.receive(b, now)
        socket.on("data", (b: Buffer) => {
            if (this.socket !== socket) return
            try {
                this.link.receive(b, clock())
            } catch (e) {
                return this.fault(e)
            }
            this.turnBytes += b.length
            if (this.turnBytes >= TURN_BYTES && !this.yielding) {
                this.yielding = true
                socket.pause()
                setImmediate(() => {
                    this.yielding = false
                    this.turnBytes = 0
                    this.pump()
                })
            }
            this.pump()
        })
        socket.on("drain", () => {
            if (this.socket !== socket) return
            this.blocked = false
            this.pump()
        })
        let error = ""
        socket.on("error", (e: Error) => (error = (e as NodeJS.ErrnoException).code ?? e.message))
        socket.on("close", () => {
            if (this.socket !== socket) return
            this.socket = undefined
            this.resetBounds()
            this.link.socketClosed(clock(), error ? `socket error ${error}` : "closed by peer")
            this.pump()
            this.socketGone()
        })
        this.pump()
    }

    // Detaches the current socket and closes it (take-over, shutdown).
    protected dropSocket(reason: string): void {
        const s = this.socket
        if (!s) return
        this.socket = undefined
        this.resetBounds()
        this.link.socketClosed(clock(), reason)
        s.destroy()
        this.pump()
    }

    // Before a graceful close: ACK the lines the application has read, while
    // the socket is still attached, so the peer does not send them again.
    protected releaseRead(): void {
        this.link.release()
        this.pump()
    }

    // Closes the link for good: pending writes and reads reject with ECLOSED.
    protected closeLink(): void {
        this.link.close(clock())
        this.pump()
        const err = new LinkError("ECLOSED", "link closed")
        for (const r of this.readers.splice(0)) r.reject(err)
        for (const r of this.holders.splice(0)) r.reject(err)
        for (const w of this.upWaiters.splice(0)) w.reject(err)
        this.clearTimer()
        this.resetBounds()
    }

    protected abstract socketGone(): void

    // A client: the server pushed its next key (docs/security.md, "Key push over the link").
    protected onRekey(_key: Buffer, _kcv: string): void {}

    protected onNotice(code: string, detail: string): void {
        if (this.logGate && !this.logGate(code)) return
        this.log.debug({ notice: code }, detail)
    }

    // Bounds the peer of every later socket (undefined: unbounded).
    protected setBounds(b: PeerBounds | undefined): void {
        this.bounds = b
    }

    // A bound cut the socket: `code` names which, `detail` says why.
    protected onBoundCut(_code: "slow-reader" | "flood", _detail: string): void {}

    // ---- the drive loop

    // One drive for a burst of writes made in one go (a loop, or the
    // continuations of writes that completed together): it runs after them.
    private pumpSoon(): void {
        if (this.pumpQueued) return
        this.pumpQueued = true
        queueMicrotask(() => {
            this.pumpQueued = false
            this.pump()
        })
    }

    protected pump(): void {
        if (this.pumping) {
            this.again = true
            return
        }
        this.pumping = true
        let failure: { e: unknown } | undefined
        try {
            do {
                this.again = false
                this.drive()
            } while (this.again)
            if (this.takes.length > 0) this.commit() // before the readers' code runs
        } catch (e) {
            failure = { e }
            this.putBack()
        } finally {
            this.pumping = false
        }
        if (this.handing.length > 0) {
            const h = this.handing
            this.handing = []
            for (let i = 0; i < h.length; i++) h[i]!.r.resolve(h[i]!.got)
        }
        if (!failure) this.handClaimed()
        if (failure) return this.fault(failure.e)
        this.faults = 0
        this.armTimer()
    }

    // An exception while handling this link (the core, crypto, or an
    // application's listener): this link's socket is closed and the error
    // logged; the process and every other link go on. Events still queued
    // are handled on the next turn.
    private fault(e: unknown): void {
        // A state folder that refuses writes (a full disk) fails every busy
        // link at once: its line is the same for all, so it shares one budget.
        if (isStateError(e)) {
            if (this.logGate === undefined || this.logGate(STATE_REFUSED)) this.log.error({ code: e.code }, `connection closed, nothing sent: ${e.message}`)
        } else this.log.error({ stack: (e as Error)?.stack }, `error while handling this link, connection closed: ${e instanceof Error ? e.message : String(e)}`)
        const s = this.socket
        this.socket = undefined
        if (s) {
            try {
                this.link.socketClosed(clock(), "closed after an error")
            } catch {
                // the core already failed; the next socket starts afresh
            }
            s.destroy()
            queueMicrotask(() => this.socketGone())
        }
        // Again, for the events left; not for ever if the error repeats.
        if (++this.faults < 3) setImmediate(() => this.pump())
    }

    private drive(): void {
        const now = clock()
        const link = this.link
        this.stepLines(now)
        const due = link.pollTimeout()
        if (due >= 0 && due <= now) link.handleTimeout(now)
        const s = this.socket
        if (s && !this.blocked) {
            while (true) {
                const b = link.pollTransmit(now)
                if (b === undefined) break
                this.cork(s) // only when there is output: most drives (a line in, a timer) have none
                if (!s.write(b)) {
                    this.blocked = true
                    break
                }
            }
        }
        for (let e = link.pollEvent(); e !== undefined; e = link.pollEvent()) this.dispatch(e)
        // Claimed lines are taken whether or not the application reads.
        if (this.claim !== undefined && this.takeClaimed(now)) {
            this.again = true // room freed: unpark
            if (this.state?.durable === true) link.release()
            else this.releaseSoon()
        }
        while (this.readers.length > 0) {
            const r = this.readers[0]!
            let got: string | string[] | undefined
            if (r.many === 0) {
                got = this.readOne(now)
                if (got === undefined) break
            } else {
                got = this.takeLines(now, r.many)
                if (got.length === 0) break
            }
            this.handing.push({ r: this.readers.shift()!, got }) // resolved once committed
            this.again = true // room freed: unpark
            // On disk the take is recorded before the reader's code runs, so
            // its ACK need not wait for that code: it leaves with this tick.
            if (this.state?.durable === true) link.release()
            else this.releaseSoon()
        }
        while (this.holders.length > 0) {
            const h = hold(link, now)
            if (h === undefined) break
            this.countIn(h.payload)
            this.holders.shift()!.resolve(h)
            this.again = true
        }
        if (s && this.socket === s) {
            const cut = this.overBounds(s, now)
            if (cut !== undefined) return this.cut(cut.code, cut.detail)
            const g = this.guard
            if (wantsRead(link) && !this.yielding && (g === undefined || (!g.gated && g.unsentSince < 0))) {
                if (s.isPaused()) s.resume()
            } else if (!s.isPaused()) s.pause()
        }
    }

    // Handles the lines received, as far as the read budget allows: lines
    // that bring nothing new spend it; once it is spent, the rest waits in
    // the framer (the socket paused: TCP slows the peer) until it refills.
    private stepLines(now: number): void {
        const link = this.link
        const guard = this.guard
        if (guard === undefined) {
            while (link.step(now)) this.sampled()
            return
        }
        const g = guard.budget
        guard.gated = false
        const st = link.stats
        while (true) {
            if (g.exhausted(now)) {
                if (!guard.gated) this.bounded.throttled++
                guard.gated = true
                if (!guard.gateTimer) {
                    guard.gateTimer = setTimeout(() => {
                        guard.gateTimer = undefined
                        this.pump()
                    }, Math.max(1, g.waitMs(now)))
                    guard.gateTimer.unref?.()
                }
                return
            }
            const wasted = st.duplicates + st.badLines + st.tooLong + st.keepalives + st.strayAcks
            const unframed = link.unframed()
            if (!link.step(now)) return
            this.sampled()
            const waste = st.duplicates + st.badLines + st.tooLong + st.keepalives + st.strayAcks - wasted
            if (waste > 0) g.spend(waste, Math.max(0, unframed - link.unframed()), now)
        }
    }

    // A bound the peer broke for too long, or undefined. Output over its cap
    // pauses reading (the peer's lines make more output: ACKs) until it drains.
    private overBounds(s: Socket, now: number): { code: "slow-reader" | "flood"; detail: string } | undefined {
        const b = this.bounds
        const g = this.guard
        if (b === undefined || g === undefined) return undefined
        if (g.budget.flooding(now))
            return { code: "flood", detail: `over its budget (${b.lineBudget} lines, ${b.byteBudget} bytes a second of keepalives, duplicates, stray ACKs or bad lines) for ${b.floodTime} ms: connection cut` }
        const unsent = s.writableLength + unsentBytes(this.link)
        if (unsent <= b.maxUnsentBytes) {
            if (g.unsentSince >= 0) clearUnsent(g)
            return undefined
        }
        if (g.unsentSince < 0) {
            g.unsentSince = now
            this.bounded.outputPaused++
            g.unsentTimer = setTimeout(() => {
                g.unsentTimer = undefined
                this.pump()
            }, b.unsentTime)
            g.unsentTimer.unref?.()
        }
        if (now - g.unsentSince >= b.unsentTime)
            return { code: "slow-reader", detail: `does not read: ${unsent} bytes unsent (over ${b.maxUnsentBytes}) for ${b.unsentTime} ms: connection cut` }
        return undefined
    }

    private cut(code: "slow-reader" | "flood", detail: string): void {
        this.bounded.cut++
        this.onBoundCut(code, detail)
        this.dropSocket(code === "flood" ? "cut: over its read budget" : "cut: does not read")
    }

    private resetBounds(): void {
        const g = this.guard
        if (g === undefined) return
        this.guard = undefined
        clearUnsent(g)
        if (g.gateTimer) clearTimeout(g.gateTimer)
    }

    // A line is ACKed only after the code awaiting readline() has run: its
    // continuation is a microtask, and setImmediate comes after every
    // microtask and nextTick of this turn. ACKed earlier (at the uncork), a
    // line read by an application that is then killed would be lost.
    private releaseSoon(): void {
        if (this.releasing) return
        this.releasing = true
        setImmediate(() => {
            this.releasing = false
            this.link.release()
            this.pump()
        })
    }

    // Lines written in one turn of the event loop (a burst of write() calls,
    // or writes made as earlier ones resolve) leave in one system call
    // instead of one each: the socket is corked until the next tick.
    private cork(s: Socket): void {
        if (this.corked === s) return
        this.corked = s
        s.cork()
        process.nextTick(() => {
            if (this.corked === s) this.corked = undefined
            if (s.destroyed) return
            // The records of what the output carries (ACKs, lines) first:
            // one commit for everything this tick wrote. If the disk refuses,
            // none of it leaves. A tick that sends nothing commits nothing:
            // what it recorded (an ACKed line's drop) goes with the next
            // commit, since only what leaves must be on disk first.
            if (this.commitOutput(s)) s.uncork()
        })
    }

    // Commits the records of what `s` holds to send, if anything; false
    // (the socket destroyed, the fault reported) if the disk refused. Also
    // before end(), which sends a corked socket's output at once.
    protected commitOutput(s: Socket): boolean {
        if (s.writableLength === 0) return true
        try {
            this.commit()
            return true
        } catch (e) {
            s.destroy()
            this.fault(e)
            return false
        }
    }

    private dispatch(e: LinkEvent): void {
        switch (e.type) {
            case "written": {
                const w = this.writes?.get(e.ticket)
                this.writes?.delete(e.ticket)
                if (w) {
                    this.traffic.linesOut++
                    this.traffic.bytesOut += w.bytes
                    w.resolve()
                }
                break
            }
            case "failed": {
                const w = this.writes?.get(e.ticket)
                this.writes?.delete(e.ticket)
                w?.reject(e.error)
                break
            }
            case "up":
                this.peerKind = e.peer
                for (const w of this.upWaiters.splice(0)) w.resolve()
                this.emit("status", true)
                break
            case "down":
                this.emit("status", false, e.reason)
                break
            case "close": {
                // The core saw an outage: close the socket now.
                const s = this.socket
                this.socket = undefined
                this.resetBounds()
                s?.destroy()
                this.log.debug({ reason: e.reason }, "socket closed") // the "link down" line says why
                if (s) queueMicrotask(() => this.socketGone())
                break
            }
            case "notice":
                this.onNotice(e.code, e.detail)
                break
            case "report":
                this.emit("report", e.report)
                break
            case "rekey":
                this.onRekey(e.key, e.kcv)
                break
            case "rekeyed":
                this.emit("rekeyed", e.kcv)
                break
            case "readable":
            case "keepalive":
                break
        }
    }

    // Takes the received lines at the head that `claim` wants; true if any.
    private takeClaimed(now: number): boolean {
        const c = this.claim!
        let any = false
        for (let k = this.link.inbox.peek(); k !== undefined && c.wants(k.payload); k = this.link.inbox.peek()) {
            this.claimed.push(this.readNext(now)!)
            any = true
        }
        return any
    }

    // The claimed lines, once their take is committed.
    private handClaimed(): void {
        if (this.claimed.length === 0) return
        const lines = this.claimed
        this.claimed = []
        for (const line of lines) this.claim?.take(line)
    }

    // Up to `max` received lines, taken now.
    private takeLines(now: number, max: number): string[] {
        const lines: string[] = []
        while (lines.length < max) {
            const s = this.readOne(now)
            if (s === undefined) break
            lines.push(s)
        }
        return lines
    }

    // The application is about to be given lines outside the drive loop:
    // commit before its code runs on them, then unpark, resume reading, and
    // ACK them once its code has run. False: the commit failed and the
    // lines went back unread.
    private tookLines(): boolean {
        try {
            this.commit()
        } catch (e) {
            this.putBack()
            this.fault(e)
            return false
        }
        this.handClaimed()
        this.releaseSoon()
        // While the socket flows and nothing waits in the framer, a take
        // changes nothing the drive loop acts on.
        const s = this.socket
        if (this.pumping) this.again = true
        else if (s === undefined || s.isPaused() || this.link.unframed() > 0) this.pump()
        return true
    }

    // Records what this end did durable (state.ts): every line read since
    // the last commit is taken for good once this returns.
    private commit(): void {
        this.state?.commit()
        for (const k of this.takes) this.countIn(k.payload)
        this.takes.length = 0
    }

    // A commit failed (a full disk) or the turn failed before it: the lines
    // read since the last commit go back unread, and the readers of this
    // pump wait again, first in line; nothing that needed the record left.
    private putBack(): void {
        this.claimed.length = 0 // they go back unread too
        if (this.takes.length > 0) {
            untake(this.link, this.takes)
            this.takes = []
        }
        if (this.handing.length > 0) {
            this.readers.unshift(...this.handing.map((h) => h.r))
            this.handing = []
        }
    }

    private countIn(line: string): void {
        this.traffic.linesIn++
        this.traffic.bytesIn += Buffer.byteLength(line)
    }

    // Smoothed like TCP's SRTT (RFC 6298: 1/8 of each new sample).
    // A round trip the last step measured, if any.
    private sampled(): void {
        if (this.link.stats.roundTrips !== this.roundTrips) this.sampleRoundTrip()
    }

    private sampleRoundTrip(): void {
        this.roundTrips = this.link.stats.roundTrips
        const ms = this.link.stats.roundTrip
        const t = this.traffic
        t.roundTrip = t.roundTrip < 0 ? ms : t.roundTrip + (ms - t.roundTrip) / 8
        this.onRoundTrip?.(ms)
    }

    private armTimer(): void {
        const t = this.link.pollTimeout()
        if (t < 0) return this.clearTimer()
        // A timer due no later is kept; firing early, it only pumps, which
        // arms the next. Most pumps move the deadline later (a line in, an
        // ACK out): re-arming on each cost two timer operations per line.
        if (this.timer && this.timerAt <= t) return
        this.clearTimer()
        this.timerAt = t
        this.timer = setTimeout(() => {
            this.timer = undefined
            this.timerAt = -1
            // After the I/O poll, not before: when the process was stalled
            // (a long GC, a starved CPU), bytes that arrived meanwhile are
            // read first, and a peer that kept talking is not taken as silent.
            setImmediate(() => this.pump())
        }, Math.max(0, t - clock()))
        this.timer.unref?.()
    }

    private clearTimer(): void {
        if (this.timer) clearTimeout(this.timer)
        this.timer = undefined
        this.timerAt = -1
    }
}

// The log kind of a write the state folder refused (state.ts, StateError).
export const STATE_REFUSED = "state-refused"

export function isStateError(e: unknown): e is Error & { code: string } {
    return e instanceof Error && (e as { code?: unknown }).code === "ESTATE"
}
