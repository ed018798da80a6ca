// A TCP socket over the runtime's primitives, replacing @devicescript/net's
// Socket, whose three bugs a link cannot live with:
// - connect() asserts when data arrives within ~10 ms of open (the "open"
//   value in its emitter is overwritten by "data"): here state is a field,
//   never an emitter's value;
// - close() never wakes a pending recv(): here close() changes state and
//   wakes the owner;
// - send() gives up on -1 (runtime write queue full) after one sleep: here it
//   retries with a deadline.
// The runtime has one socket at a time, and this class owns its single event
// hook: do not mix it with @devicescript/net's connect, fetch or MQTT.
// Received chunks go to the consumer given to attach() as they arrive (before
// that, they wait in a queue of at most `maxQueued` bytes; beyond it the
// socket is closed as an outage: dropping raw bytes would splice two lines).
//
// Late results. The ESP32 runtime runs opens one after another in a worker
// with no connect timeout, and each open ends in exactly one result event
// ("open" or "error") that carries no socket id. The firmware gives up on a
// connect after `timeout` ms, but the runtime's result comes anyway, later.
// So every open the runtime still owes a result for is remembered (at most
// one: no new open is issued while one is owed, which also keeps opens from
// queueing up), the next result goes to it, and a result for an abandoned
// connect never reaches the current socket. Data goes only to an open socket.
import * as ds from "@devicescript/core"

export type SocketEvent = "open" | "close" | "data" | "error"
export interface Primitives {
    _socketOpen(host: string, port: number): number
    _socketClose(): number
    _socketWrite(buf: Buffer): number
    _socketOnEvent: (event: SocketEvent, arg?: Buffer | string) => void
}
let rt = ds as any as Primitives

// Tests drive the socket layer with stand-in primitives.
export function usePrimitives(p: Primitives): void {
    rt = p
    current = undefined
    owed = undefined
    owedSince = 0
}

// How long an abandoned open may stay owed before it is written off (the
// runtime's own TCP connect gives up well before this).
const OWED_MAX = 60000

let current: TcpSocket | undefined = undefined
let owed: TcpSocket | undefined = undefined // the open whose result has not come yet
let owedSince = 0

function onEvent(event: SocketEvent, arg?: Buffer | string): void {
    const s = current
    if (event !== "data" && owed) {
        // The result of the open the runtime owed.
        const o = owed
        owed = undefined
        if (o === s && o.state === "connecting") {
            o.handle(event, arg)
            return
        }
        // The result of an abandoned connect: it must not act on the current
        // socket. An open that succeeded late holds the runtime's socket
        // (no newer open has been issued: at most one is owed): close it.
        if (event === "open") rt._socketClose()
        return
    }
    // Anything else belongs to the open socket, if there is one.
    if (s && s.state === "open") s.handle(event, arg)
}

export type ConnectKind = "refused" | "noAnswer" | "noNetwork"

// Why a connect failed: "refused" when the network answered (the runtime
// reported an error such as "can't connect" or ECONNREFUSED), "noAnswer" when
// nothing came back in time or the host could not be resolved, "noNetwork"
// when the runtime has no network at all.
export class ConnectError extends Error {
    constructor(readonly kind: ConnectKind, message: string) {
        super(message)
        this.name = "ConnectError"
    }
}

// The message of anything thrown (DeviceScript's errors may not be Errors).
export function errorText(e: unknown): string {
    const m = (e as { message?: unknown }).message
    return typeof m === "string" ? m : "error"
}

export class TcpSocket {
    state: "connecting" | "open" | "closed" = "connecting"
    error = ""
    private chunks: Buffer[] = []
    private queued = 0
    private consumer: ((b: Buffer) => void) | undefined = undefined

    // `changed` runs on every state change and chunk: the owner's wake-up.
    private constructor(readonly name: string, readonly maxQueued: number, private changed: () => void) {}

    // Opens a socket and waits up to `timeout` ms for it; throws a
    // ConnectError naming the cause (the runtime's "can't connect",
    // ECONNREFUSED, timeout).
    static async connect(host: string, port: number, timeout: number, maxQueued: number, changed: () => void): Promise<TcpSocket> {
        if (current) current.close()
        const name = host + ":" + port
        const end = ds.millis() + timeout
        // An abandoned open is still running in the runtime: wait for its
        // result rather than queue another behind it.
        while (owed && ds.millis() < end) await ds.sleep(20)
        if (owed) {
            if (ds.millis() - owedSince < OWED_MAX)
                throw new ConnectError("noAnswer", "connect to " + name + ": the previous connect has had no answer yet")
            owed = undefined
        }
        const s = new TcpSocket(name, maxQueued, changed)
        const failed = "connect to " + name + " failed: "
        rt._socketOnEvent = onEvent
        current = s
        let r = 0
        try {
            r = rt._socketOpen(host, port)
        } catch (e) {
            current = undefined
            const m = errorText(e)
            throw new ConnectError(m.indexOf("network") >= 0 ? "noNetwork" : "noAnswer", failed + m)
        }
        if (r !== 0) {
            current = undefined
            throw new ConnectError("noAnswer", failed + "code " + r)
        }
        owed = s
        owedSince = ds.millis()
        while (s.state === "connecting") {
            const left = end - ds.millis()
            if (left <= 0) {
                s.close()
                throw new ConnectError("noAnswer", "connect to " + name + " timed out after " + timeout + " ms")
            }
            await ds.sleep(Math.min(left, 20))
        }
        if (s.state === "closed") {
            const why = s.error || "closed"
            const unresolved = why.indexOf("resolve") >= 0 || why.indexOf("ENOTFOUND") >= 0 || why.indexOf("EAI_AGAIN") >= 0
            throw new ConnectError(unresolved ? "noAnswer" : "refused", failed + why)
        }
        return s
    }

    // From now on each received chunk goes to `consumer` as it arrives,
    // starting with those already queued.
    attach(consumer: (b: Buffer) => void): void {
        this.consumer = consumer
        while (this.chunks.length > 0) consumer(this.chunks.shift() as Buffer)
        this.queued = 0
    }

    // Writes all of `b`; throws when the socket is closed or the runtime
    // keeps refusing for `timeout` ms.
    async send(b: Buffer, timeout: number): Promise<void> {
        const end = ds.millis() + timeout
        while (true) {
            if (this.state !== "open" || current !== this) throw new Error("write on a closed socket")
            const r = rt._socketWrite(b)
            if (r === 0) return
            if (r !== -1 || ds.millis() > end) {
                this.fail("write error " + r)
                throw new Error("write to " + this.name + " failed: code " + r)
            }
            await ds.sleep(10) // runtime write queue full
        }
    }

    close(): void {
        if (this.state === "closed") return
        const wasOpen = this.state === "open"
        this.state = "closed"
        if (current === this) {
            current = undefined
            // A connecting socket is not open in the runtime yet; its late
            // result is handled by onEvent.
            if (wasOpen) rt._socketClose()
        }
        this.changed()
    }

    handle(event: SocketEvent, arg?: Buffer | string): void {
        if (event === "open") {
            if (this.state === "connecting") this.state = "open"
        } else if (event === "data") {
            const b = arg as Buffer
            if (this.consumer) this.consumer(b)
            else if (this.queued + b.length > this.maxQueued) {
                this.fail("receive queue over " + this.maxQueued + " bytes")
                return
            } else {
                this.chunks.push(b)
                this.queued += b.length
            }
        } else if (event === "close") {
            this.fail("")
            return
        } else if (event === "error") {
            this.fail(typeof arg === "string" ? arg : "socket error")
            return
        }
        this.changed()
    }

    private fail(why: string): void {
        if (why !== "" && this.error === "") this.error = why
        this.close()
    }
}
