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
import * as ds from "@devicescript/core"

type SocketEvent = "open" | "close" | "data" | "error"
type Primitives = typeof ds & {
    _socketOpen(host: string, port: number): number
    _socketClose(): number
    _socketWrite(buf: Buffer | string): number
    _socketOnEvent: (event: SocketEvent, arg?: Buffer | string) => void
}
const rt = ds as Primitives

let current: TcpSocket | undefined = undefined

function onEvent(event: SocketEvent, arg?: Buffer | string): void {
    const s = current
    if (s) s.handle(event, arg)
}

export class TcpSocket {
    state: "connecting" | "open" | "closed" = "connecting"
    error = ""
    private chunks: Buffer[] = []
    private queued = 0
    private consumer: ((b: Buffer) => void) | undefined = undefined

    // `changed` runs on every state change and chunk: the owner's wake-up.
    private constructor(readonly name: string, readonly maxQueued: number, private changed: () => void) {}

    // Opens a socket and waits up to `timeout` ms for it; throws an Error
    // naming the cause (the runtime's "can't connect", ECONNREFUSED, timeout).
    static async connect(host: string, port: number, timeout: number, maxQueued: number, changed: () => void): Promise<TcpSocket> {
        if (current) current.close()
        const s = new TcpSocket(host + ":" + port, maxQueued, changed)
        rt._socketOnEvent = onEvent
        current = s
        const r = rt._socketOpen(host, port)
        if (r !== 0) {
            current = undefined
            throw new Error("connect to " + s.name + " failed: code " + r)
        }
        const end = ds.millis() + timeout
        while (s.state === "connecting") {
            const left = end - ds.millis()
            if (left <= 0) {
                s.close()
                throw new Error("connect to " + s.name + " timed out after " + timeout + " ms")
            }
            await ds.sleep(left < 20 ? left : 20)
        }
        if (s.state === "closed") throw new Error("connect to " + s.name + " failed: " + (s.error !== "" ? s.error : "closed"))
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
        this.state = "closed"
        if (current === this) {
            current = undefined
            rt._socketClose()
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
