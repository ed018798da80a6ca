// The Node driver of one Link: moves bytes between a net.Socket and the core,
// arms one timer for the core's next deadline, and turns the core's events
// into promises and "status" events. It makes no protocol decision.
//
// Connection (server side) and Client (Node client) are both Endpoints, so
// they share one interface: readline(), write(), status(), connected(),
// on("status"), for await.

import { EventEmitter } from "node:events"
import type { Socket } from "node:net"
import { Link, LinkError, type LinkEvent, type Peer } from "../shared/index.js"
import type { Logger } from "./log.js"

export interface WriteOptions {
    qos?: boolean // default true: resolves once the peer ACKed
    wait?: boolean // default true (with qos): one qos message in flight, in order
}

interface Waiter {
    resolve: () => void
    reject: (e: Error) => void
}

// Monotonic ms: the core compares deadlines, so wall-clock jumps must not reach it.
export function clock(): number {
    return Math.floor(performance.now())
}

export abstract class Endpoint extends EventEmitter {
    protected readonly link: Link
    protected socket: Socket | undefined
    protected readonly log: Logger
    private timer: NodeJS.Timeout | undefined
    private timerAt = -1
    private blocked = false // socket.write returned false: wait for "drain"
    private corked: Socket | undefined // corked until the next tick
    private releasing = false // a release of taken lines' ACKs is scheduled
    private pumping = false
    private faults = 0 // pump() failures in a row
    private again = false
    private writes = new Map<number, Waiter>()
    private readers: Array<{ resolve: (s: string) => void; reject: (e: Error) => void }> = []
    private upWaiters: Waiter[] = []
    private peerKind: Peer | undefined

    constructor(link: Link, log: Logger) {
        super()
        this.link = link
        this.log = log
    }

    // ---- the shared interface

    // Resolves when the peer ACKed the line (qos) or it went to the socket
    // (no qos); waits across outages. Rejects with LinkError for a bad line
    // (EEMPTY, ENEWLINE, ETOOLONG, ETYPE), a full queue (EQUEUEFULL), or close
    // (ECLOSED).
    write(line: string, opts: WriteOptions = {}): Promise<void> {
        const qos = opts.qos ?? true
        const wait = opts.wait ?? true
        let ticket: number
        try {
            ticket = this.link.write(line, qos, wait)
        } catch (e) {
            return Promise.reject(e)
        }
        const p = new Promise<void>((resolve, reject) => this.writes.set(ticket, { resolve, reject }))
        this.pump()
        return p
    }

    // The next received line, without its "\n"; waits across outages.
    readline(): Promise<string> {
        const s = this.link.read(clock())
        if (s !== undefined) {
            this.pump() // room again: unpark, resume reading
            this.releaseSoon()
            return Promise.resolve(s)
        }
        if (this.link.isClosed()) return Promise.reject(new LinkError("ECLOSED", "link is closed"))
        return new Promise((resolve, reject) => this.readers.push({ resolve, reject }))
    }

    status(): boolean {
        return this.link.status()
    }

    // Resolves when the link is up (at once if it is).
    connected(): Promise<void> {
        if (this.link.status()) return Promise.resolve()
        if (this.link.isClosed()) return Promise.reject(new LinkError("ECLOSED", "link is closed"))
        return new Promise((resolve, reject) => this.upWaiters.push({ resolve, reject }))
    }

    // Links that completed the handshake.
    get connects(): number {
        return this.link.connects
    }

    // "v1" or "devs-iot" once a link has come up.
    get peer(): Peer | undefined {
        return this.peerKind
    }

    get stats() {
        return this.link.stats
    }

    async *[Symbol.asyncIterator](): AsyncIterator<string> {
        while (true) {
            try {
                yield await this.readline()
            } catch (e) {
                if ((e as LinkError).code === "ECLOSED") return
                throw e
            }
        }
    }

    // ---- for subclasses

    // `open`: how the link starts on this socket (default: link.open).
    protected attach(socket: Socket, rest: Buffer[] = [], open?: (now: number) => void): void {
        const now = clock()
        this.socket = socket
        this.blocked = false
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
        for (const w of this.upWaiters.splice(0)) w.reject(err)
        this.clearTimer()
    }

    protected abstract socketGone(): void

    protected onNotice(code: string, detail: string): void {
        this.log.debug({ notice: code }, detail)
    }

    // ---- the drive loop

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
        } catch (e) {
            failure = { e }
        } finally {
            this.pumping = false
        }
        if (failure) return this.fault(failure.e)
        this.faults = 0
        this.armTimer()
    }

    // An exception while handling this link (the core, crypto, or an
    // application's listener): this link's socket is closed and the error
    // logged; the process and every other link go on. Events still queued
    // are handled on the next turn.
    private fault(e: unknown): void {
        this.log.error({ stack: (e as Error)?.stack }, `error while handling this link, connection closed: ${e instanceof Error ? e.message : String(e)}`)
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
        while (link.step(now)) {}
        const due = link.pollTimeout()
        if (due >= 0 && due <= now) link.handleTimeout(now)
        const s = this.socket
        if (s && !this.blocked) {
            this.cork(s)
            while (true) {
                const b = link.pollTransmit(now)
                if (b === undefined) break
                if (!s.write(b)) {
                    this.blocked = true
                    break
                }
            }
        }
        for (let e = link.pollEvent(); e !== undefined; e = link.pollEvent()) this.dispatch(e)
        while (this.readers.length > 0) {
            const line = link.read(now)
            if (line === undefined) break
            this.readers.shift()!.resolve(line)
            this.again = true // room freed: unpark
            this.releaseSoon()
        }
        if (s && this.socket === s) {
            if (link.wantsRead()) {
                if (s.isPaused()) s.resume()
            } else if (!s.isPaused()) s.pause()
        }
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
            s.uncork()
        })
    }

    private dispatch(e: LinkEvent): void {
        switch (e.type) {
            case "written": {
                const w = this.writes.get(e.ticket)
                this.writes.delete(e.ticket)
                w?.resolve()
                break
            }
            case "failed": {
                const w = this.writes.get(e.ticket)
                this.writes.delete(e.ticket)
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
                s?.destroy()
                this.log.info({ reason: e.reason }, "link lost")
                if (s) queueMicrotask(() => this.socketGone())
                break
            }
            case "notice":
                this.onNotice(e.code, e.detail)
                break
            case "readable":
            case "keepalive":
                break
        }
    }

    private armTimer(): void {
        const t = this.link.pollTimeout()
        if (t < 0) return this.clearTimer()
        if (t === this.timerAt && this.timer) return
        this.clearTimer()
        this.timerAt = t
        this.timer = setTimeout(() => {
            this.timer = undefined
            this.timerAt = -1
            this.pump()
        }, Math.max(0, t - clock()))
        this.timer.unref?.()
    }

    private clearTimer(): void {
        if (this.timer) clearTimeout(this.timer)
        this.timer = undefined
        this.timerAt = -1
    }
}
