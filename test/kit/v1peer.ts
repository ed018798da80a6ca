// Raw-socket peers that behave like the ORIGINAL micropython-iot ends (wire
// protocol v1), written from docs/protocol.md and checked against the
// original's source (docs/testing.md lists what the check covered), not from
// devs-iot's code. They copy the original's quirks on purpose (ACK told by
// length, the server's reads: at most 4096 bytes, leading blank lines
// stripped, an unfinished line kept across sockets, bytes after the id dropped
// on a reconnect; the server's `wait` waiting on every id ever sent: fault 5),
// but where the original's reader would die (a line that does not start with
// two hex digits, fault 4; a read that is not whole UTF-8, the server's fault
// 3) they count it instead, so a test can assert that it never happened.
//
// As in the original, a message is ACKed on receipt, before the application
// reads it, and ids are 8 bits (00 first, then 01..ff, 01..). The client keeps
// at most 20 received lines unread (docs/protocol.md, "The send window toward a v1 peer"): one more is lost,
// although ACKed, and the client treats it as an outage and reconnects. A
// line goes into the queue first and wakes the reader afterwards, so every
// line of one TCP read is queued before the application runs (as the
// original's reader does: it reads on until the socket is empty).
//
//   V1Client: an original MicroPython board.   V1Server: the original Python server.
//
// Everything a peer opens (sockets, timers) is released by its close().
import { connect, createServer, type Server as NetServer, type Socket } from "node:net"

export interface V1WriteOptions {
    qos?: boolean // default true: resolves once the peer ACKed (resends until then)
    // default true: with qos, first waits for its turn. The board: until its
    // earlier qos+wait writes are ACKed (one lock). The server: until EVERY
    // earlier id is ACKed, qos or not (its fault 5).
    wait?: boolean
}

const hex = (mid: number) => mid.toString(16).padStart(2, "0")

// Received lines the original client keeps unread (its server: no limit).
export const V1_CLIENT_QUEUE = 20
// The original server reads a socket at most this many bytes at a time.
const V1_SERVER_READ = 4096
const HEX2 = /^[0-9a-fA-F]{2}/

// Wakes every waiter at once; a waiter may also give up after `ms`.
class Signal {
    private waiters = new Set<() => void>()
    next(ms?: number): Promise<void> {
        return new Promise((resolve) => {
            let t: NodeJS.Timeout | undefined
            const done = () => {
                if (t) clearTimeout(t)
                this.waiters.delete(done)
                resolve()
            }
            this.waiters.add(done)
            if (ms !== undefined) t = setTimeout(done, Math.max(1, ms))
        })
    }
    fire(): void {
        for (const w of [...this.waiters]) w()
    }
}

// Bytes to lines at "\n"; a UTF-8 character cut between reads is joined
// because lines are decoded only once complete.
class LineSplitter {
    private buf = Buffer.alloc(0)
    push(b: Buffer): string[] {
        this.buf = Buffer.concat([this.buf, b])
        const lines: string[] = []
        for (let i = this.buf.indexOf(10); i >= 0; i = this.buf.indexOf(10)) {
            lines.push(this.buf.subarray(0, i).toString("utf8"))
            this.buf = this.buf.subarray(i + 1)
        }
        return lines
    }
}

// The 256-bit set of seen ids with v1's clearing rule.
class SeenSet {
    private bits = new Uint8Array(32)
    clear(): void {
        this.bits.fill(0)
    }
    has(m: number): boolean {
        return (this.bits[m >> 3] & (1 << (m & 7))) !== 0
    }
    mark(m: number): void {
        this.bits[m >> 3] |= 1 << (m & 7)
        this.bits[((m >> 3) + 16) & 31] = 0 // the byte 16 ahead: ids 121..135 ahead become new
    }
}

// Handle a promise's rejection for Node (no "unhandled rejection" when a test
// gave up on it) while the caller still sees it.
function quiet<T>(p: Promise<T>): Promise<T> {
    p.catch(() => {})
    return p
}

// One v1 end of a link: ids, seen set, un-ACKed ids, received queue. The
// socket handling (handshake, keepalive, outage) is the subclass's.
export class V1Link {
    sock: Socket | undefined
    ready = false // messages may go out on `sock`
    connects = 0 // sockets adopted (server) or connected (client)
    drops = 0 // sockets lost: closed by the peer, outage, or refused
    duplicates = 0 // messages ACKed and dropped as already seen
    resends = 0 // message lines sent again with the same id (after timeout or a reconnect)
    overflows = 0 // lines lost (ACKed) because the receive queue was full
    closed = false
    readonly rawLines: string[] = [] // every line received, keepalives included
    readonly bangLines: string[] = [] // lines starting with "!" (devs-iot extensions): must stay empty
    readonly badLines: string[] = [] // lines the original's reader would have died on
    readonly sentLines: string[] = [] // message lines written, resends included
    // Tests set this to keep an ACK back (the message is still received).
    withholdAck: ((mid: number, payload: string) => boolean) | undefined
    protected readonly sig = new Signal()
    protected readonly pend = new Set<number>() // every id sent and not ACKed, qos or not
    private readonly pendNoQos = new Set<number>() // of pend: the non-qos ones, never resent
    protected lastWrite = 0 // when a line last went to the socket (the board's keepalive counts from it)
    private locked = false // the board's write lock: a qos+wait write holds it until its ACK
    private lockWaiters: Array<() => void> = []
    private epoch = 0 // bumped per socket: a qos line is resent after a reconnect
    private mid = 0 // 00 first, then 01..ff, 01..
    private readonly seen = new SeenSet()
    private readonly queue: string[] = []
    private readers: Array<{ resolve: (s: string) => void; reject: (e: Error) => void }> = []
    private waking = false // a microtask will hand queued lines to waiting readers
    private readonly timers = new Set<NodeJS.Timeout>()
    private held: Array<string | Buffer> | undefined // writes kept back while a line goes out in two halves

    // `queueLimit`: received lines kept unread before an overflow (none: no
    // limit). `waitForAll`: a qos+wait write waits until every earlier id is
    // ACKed (the server, fault 5), else only for earlier qos+wait writes (the board).
    constructor(
        readonly timeout: number,
        private readonly queueLimit: number | undefined,
        private readonly waitForAll: boolean
    ) {}

    write(line: string, opts: V1WriteOptions = {}): Promise<void> {
        return quiet(this.doWrite(line, opts.qos ?? true, opts.wait ?? true))
    }

    readline(): Promise<string> {
        const l = this.queue.shift()
        if (l !== undefined) return Promise.resolve(l)
        if (this.closed) return Promise.reject(new Error("v1 peer closed"))
        return quiet(new Promise((resolve, reject) => this.readers.push({ resolve, reject })))
    }

    // Every received line, until the peer is closed.
    async *[Symbol.asyncIterator](): AsyncIterator<string> {
        while (!this.closed) {
            try {
                yield await this.readline()
            } catch {
                return
            }
        }
    }

    // Received messages not read yet.
    get queued(): number {
        return this.queue.length
    }

    // Resolves when the link is up (messages may go out).
    connected(): Promise<void> {
        return this.waitFor(() => this.ready)
    }

    // Resolves once `cond` holds; re-checked on every received line and state change.
    waitFor(cond: () => boolean): Promise<void> {
        return quiet(this.until(cond))
    }

    // Non-qos ids sent and never ACKed (lost in an outage): at the server,
    // as in the original, every later qos+wait write waits for them forever
    // (fault 5); the board's writes do not wait for them.
    unackedNoQos(): number[] {
        return [...this.pendNoQos]
    }

    waitAcked(mid: number): Promise<void> {
        return this.waitFor(() => !this.pend.has(mid))
    }

    // Bytes straight onto the socket (garbage, hand-made lines).
    sendRaw(data: string | Buffer): void {
        if (!this.sock || !this.ready) throw new Error("v1 peer: link not up")
        this.out(data)
    }

    // A non-qos message whose bytes go out in two writes, cut at byte `at` of
    // the whole line (id included), `gapMs` apart. Resolves with its id.
    async writeSplit(payload: string, at: number, gapMs = 30): Promise<number> {
        await this.until(() => this.ready)
        const s = this.sock!
        const mid = this.takeMid()
        this.pend.add(mid)
        const bytes = Buffer.from(hex(mid) + payload + "\n")
        s.write(bytes.subarray(0, at))
        this.held = [] // no keepalive or ACK may land inside the line
        try {
            const end = Date.now() + gapMs
            while (Date.now() < end) {
                this.check()
                await this.sig.next(end - Date.now())
            }
            if (this.sock !== s) throw new Error("v1 peer: socket lost between the two halves")
            s.write(bytes.subarray(at))
            this.sentLines.push(bytes.toString())
        } finally {
            const held = this.held
            this.held = undefined
            for (const b of held) this.out(b)
        }
        return mid
    }

    // ---- for the subclasses

    // Every write to the socket goes here (a split line holds the others back).
    protected out(data: string | Buffer): void {
        this.lastWrite = Date.now()
        if (this.held) this.held.push(data)
        else this.sock?.write(data)
    }

    // A new socket: a qos line not ACKed yet goes again once it is ready.
    protected newSocket(s: Socket): void {
        this.sock = s
        this.ready = false
        this.connects++
        this.epoch++
        this.sig.fire()
    }

    protected setReady(): void {
        this.ready = true
        this.sig.fire()
    }

    protected lostSocket(s: Socket): boolean {
        if (this.sock !== s) return false
        this.sock = undefined
        this.ready = false
        this.clearTimers()
        s.destroy()
        this.drops++
        this.sig.fire()
        return true
    }

    // One received line.
    protected receive(line: string): void {
        this.rawLines.push(line)
        this.sig.fire()
        if (line.startsWith("!")) this.bangLines.push(line)
        if (line === "") return // keepalive
        if (!HEX2.test(line)) return void this.badLines.push(line)
        const mid = parseInt(line.slice(0, 2), 16)
        if (line.length === 2) {
            this.pend.delete(mid) // an ACK, told by length alone
            this.pendNoQos.delete(mid)
            return
        }
        const payload = line.slice(2)
        if (!this.withholdAck?.(mid, payload)) this.out(hex(mid) + "\n") // on receipt, duplicates too
        if (mid === 0) this.seen.clear() // "the peer restarted" (fault 1 lives here)
        if (this.seen.has(mid)) return void this.duplicates++
        this.seen.mark(mid)
        if (this.queueLimit !== undefined && this.queue.length >= this.queueLimit) {
            this.overflows++ // ACKed and lost (fault 6)
            return this.overflowed()
        }
        this.queue.push(payload)
        this.wake()
    }

    // The receive queue overflowed: the original client takes it for an outage.
    protected overflowed(): void {}

    private wake(): void {
        if (this.waking || this.readers.length === 0) return
        this.waking = true
        queueMicrotask(() => {
            this.waking = false
            while (this.readers.length > 0 && this.queue.length > 0) this.readers.shift()!.resolve(this.queue.shift()!)
        })
    }

    protected later(fn: () => void, ms: number): void {
        const t = setTimeout(() => {
            this.timers.delete(t)
            fn()
        }, ms)
        this.timers.add(t)
    }

    protected every(fn: () => void, ms: number): void {
        this.timers.add(setInterval(fn, ms))
    }

    protected clearTimers(): void {
        for (const t of this.timers) clearTimeout(t) // clears intervals too
        this.timers.clear()
    }

    protected shut(): void {
        this.closed = true
        this.clearTimers()
        const err = new Error("v1 peer closed")
        for (const r of this.readers.splice(0)) r.reject(err)
        this.sig.fire()
        const s = this.sock
        this.sock = undefined
        this.ready = false
        s?.destroy()
    }

    // ---- inside

    private takeMid(): number {
        const m = this.mid
        this.mid = m === 255 ? 1 : m + 1
        return m
    }

    private check(): void {
        if (this.closed) throw new Error("v1 peer closed")
    }

    private async until(cond: () => boolean): Promise<void> {
        while (!cond()) {
            this.check()
            await this.sig.next()
        }
    }

    private async doWrite(line: string, qos: boolean, wait: boolean): Promise<void> {
        if (!(qos && wait)) return this.send(line, qos)
        if (!this.waitForAll) {
            await this.lock()
            try {
                this.check()
                return await this.send(line, qos)
            } finally {
                this.unlock()
            }
        }
        // The server's fault 5: wait for every earlier id, qos or not.
        while (this.pend.size > 0) {
            this.check()
            await this.sig.next()
        }
        return this.send(line, qos)
    }

    private async lock(): Promise<void> {
        if (!this.locked) {
            this.locked = true
            return
        }
        await new Promise<void>((resolve) => this.lockWaiters.push(resolve)) // handed over by unlock()
    }

    private unlock(): void {
        const next = this.lockWaiters.shift()
        if (next) next()
        else this.locked = false
    }

    private async send(line: string, qos: boolean): Promise<void> {
        const mid = this.takeMid()
        const text = hex(mid) + (line.endsWith("\n") ? line : line + "\n")
        this.pend.add(mid)
        if (!qos) this.pendNoQos.add(mid)
        await this.until(() => this.ready)
        this.out(text)
        this.sentLines.push(text)
        if (!qos) return
        let sentAt = Date.now()
        let epoch = this.epoch
        while (this.pend.has(mid)) {
            this.check()
            if (!this.ready) {
                await this.sig.next()
            } else if (epoch !== this.epoch || Date.now() - sentAt >= this.timeout) {
                this.out(text) // same id: after a reconnect, or no ACK within timeout
                this.sentLines.push(text)
                this.resends++
                sentAt = Date.now()
                epoch = this.epoch
            } else {
                await this.sig.next(sentAt + this.timeout - Date.now())
            }
        }
    }
}

export interface V1ClientOptions {
    id: string
    port: number
    host?: string // loopback only in tests
    timeout: number
    idDelay?: number // ms from connect to the id line (original: 50)
    // ms from losing a socket to the next connect. The original waits
    // 2 x timeout, then reconnects its WiFi (at least 0.5 s) and waits 3 s
    // more for it to settle; the default, 2 x timeout, leaves the WiFi out.
    reconnectDelay?: number
    queueLimit?: number // received lines kept unread (original: 20); past it a line is lost and the client reconnects
    // The original stops for good when its very first connect is refused
    // (fault 7). Default true; false retries as after any other outage.
    stopOnFirstRefusal?: boolean
}

// An original MicroPython board: sends its id line alone (no probe) 50 ms
// after connecting, a keepalive when it has written nothing for timeout/4,
// ACKs every message on receipt, keeps at most 20 lines unread, and
// reconnects after an outage (or a queue overflow).
export class V1Client extends V1Link {
    readonly id: string
    ups = 0 // sockets on which a first line arrived
    gaveUp = false // its first connect was refused: stopped for good (fault 7)
    private readonly host: string
    private readonly port: number
    private readonly idDelay: number
    private readonly reconnectDelay: number
    private readonly stopOnFirstRefusal: boolean
    private dialed = 0
    private retry: NodeJS.Timeout | undefined

    constructor(opts: V1ClientOptions) {
        super(opts.timeout, opts.queueLimit ?? V1_CLIENT_QUEUE, false)
        this.id = opts.id
        this.host = opts.host ?? "127.0.0.1"
        this.port = opts.port
        this.idDelay = opts.idDelay ?? 50
        this.reconnectDelay = opts.reconnectDelay ?? 2 * opts.timeout
        this.stopOnFirstRefusal = opts.stopOnFirstRefusal ?? true
    }

    start(): this {
        this.dial()
        return this
    }

    async close(): Promise<void> {
        if (this.closed) return
        if (this.retry) clearTimeout(this.retry)
        const s = this.sock
        this.shut()
        if (s && !s.closed) await new Promise((resolve) => s.once("close", resolve))
    }

    private dial(): void {
        this.retry = undefined
        if (this.closed) return
        const first = this.dialed++ === 0
        const s = connect({ host: this.host, port: this.port })
        s.setNoDelay(true)
        let connected = false
        s.on("error", () => {}) // "close" follows
        this.sock = s
        const lines = new LineSplitter()
        let lastRx = Date.now()
        let gotMessage = false // a line other than a keepalive: the timeout drops from 2 x timeout
        // The read timeout counts from the last byte received.
        const watch = () => {
            const limit = gotMessage ? this.timeout : 2 * this.timeout
            const left = lastRx + limit - Date.now()
            if (left < 0) return this.lost(s)
            this.later(watch, left + 1)
        }
        // A keepalive once nothing was written for timeout/4.
        const keepalive = () => {
            const due = this.lastWrite + this.timeout / 4 - Date.now()
            if (due > 0) return this.later(keepalive, due)
            this.out("\n")
            this.later(keepalive, this.timeout / 4)
        }
        s.once("connect", () => {
            if (this.sock !== s) return
            connected = true
            this.newSocket(s)
            lastRx = Date.now()
            watch()
            this.later(() => {
                this.out(this.id + "\n") // the id line alone: no probe
                this.later(keepalive, this.timeout / 4)
            }, this.idDelay)
        })
        s.on("data", (b: Buffer) => {
            if (this.sock !== s) return
            lastRx = Date.now()
            for (const line of lines.push(b)) {
                if (this.sock !== s) return
                if (line !== "") gotMessage = true
                if (!this.ready) {
                    this.ups++ // a complete line from the server, a keepalive too: connected
                    this.setReady()
                }
                this.receive(line)
            }
        })
        s.once("close", () => {
            if (first && !connected && this.stopOnFirstRefusal && this.sock === s) {
                this.gaveUp = true
                this.sock = undefined
                this.drops++
                this.sig.fire()
                return
            }
            this.lost(s)
        })
    }

    protected override overflowed(): void {
        if (this.sock) this.lost(this.sock)
    }

    private lost(s: Socket): void {
        if (!this.lostSocket(s) || this.closed) return
        this.retry = setTimeout(() => this.dial(), this.reconnectDelay)
    }
}

export interface V1ServerOptions {
    timeout: number
    port?: number // default 0: a free port
    settle?: number // ms after the first read past the id's before messages go out (original: 200)
    acceptPause?: number // ms the accept loop sleeps after each turn (original: 200)
}

// One client id's link at the V1Server: it outlives sockets (one id sequence,
// one seen set, one keepalive loop and one unfinished line per id).
export class V1ServerLink extends V1Link {
    joinedLines = 0 // a read began with the '\n' ending an unfinished line: stripped, the line joined to the next
    carriedLines = 0 // a socket's unfinished line joined to the next socket's bytes (fault 2)
    splitReads = 0 // reads that are not whole UTF-8: the original's reader dies on them (fault 3)
    private partial: Buffer = Buffer.alloc(0) // the unfinished line, kept across sockets as the original does
    private carried = false // `partial` came from a socket that is gone
    private keepaliveDue = 0 // when the keepalive loop next sends

    constructor(
        readonly id: string,
        timeout: number,
        private readonly settle: number
    ) {
        super(timeout, undefined, true)
    }

    /** @internal */
    adopt(s: Socket, first: boolean, rest: Buffer, more: Buffer): void {
        this.newSocket(s)
        // The bytes after the id in its read start the unfinished line on a
        // first connection; they are read on with the next read that is not
        // all blank, and do not end the warm-up.
        if (first) this.partial = rest
        else if (this.partial.length > 0) this.carried = true
        let lastRx = Date.now()
        let gotRead = false
        const watch = () => {
            const left = lastRx + this.timeout - Date.now()
            if (left < 0) return void this.lostSocket(s)
            this.later(watch, left + 1)
        }
        watch()
        // The keepalive loop sends, sleeps timeout/4, and while the link is
        // down polls for it every timeout/10.
        const keepalive = () => {
            this.out("\n")
            this.keepaliveDue = Date.now() + this.timeout / 4
            this.later(keepalive, this.timeout / 4)
        }
        const now = Date.now()
        this.later(keepalive, first ? 0 : this.keepaliveDue > now ? this.keepaliveDue - now : this.timeout / 10)
        const read = (d: Buffer) => {
            lastRx = Date.now()
            if (!gotRead) {
                gotRead = true // "let the board get out of bed"
                this.later(() => this.setReady(), this.settle)
            }
            let k = 0
            while (k < d.length && d[k] === 10) k++
            if (k > 0 && this.partial.length > 0 && this.partial[this.partial.length - 1] !== 10) this.joinedLines++
            for (let j = 0; j < k; j++) this.receive("") // stripped: keepalives
            d = d.subarray(k)
            if (d.length === 0 || this.sock !== s) return
            if (!Buffer.from(d.toString("utf8")).equals(d)) this.splitReads++
            this.partial = Buffer.concat([this.partial, d])
            for (let nl = this.partial.indexOf(10); nl >= 0; nl = this.partial.indexOf(10)) {
                const line = this.partial.subarray(0, nl).toString("utf8")
                this.partial = this.partial.subarray(nl + 1)
                if (this.carried) this.carriedLines++
                this.carried = false
                this.receive(line)
                if (this.sock !== s) return
            }
        }
        const onData = (b: Buffer) => {
            for (let i = 0; i < b.length && this.sock === s; i += V1_SERVER_READ) read(b.subarray(i, i + V1_SERVER_READ))
        }
        s.on("data", onData)
        s.once("close", () => this.lostSocket(s))
        if (more.length > 0) onData(more)
    }

    /** @internal */
    kill(): void {
        if (this.sock) this.lostSocket(this.sock)
    }

    /** @internal */
    shutdown(): void {
        this.shut()
    }
}

// A socket accepted and waiting for the accept loop to read its id.
interface Waiting {
    s: Socket
    head: Buffer
    gone: boolean
    detach: () => void
}

// The original Python server. Its accept loop takes one socket per turn,
// reads its id (waiting up to timeout, no other socket taken meanwhile) and
// sleeps 200 ms.
export class V1Server {
    port = 0
    refused = 0 // connections closed because their id's link was up
    droppedAfterId = 0 // bytes dropped after the id line on reconnects (the quirk)
    noId = 0 // connections closed because no id line came within timeout
    private readonly timeout: number
    private readonly settle: number
    private readonly acceptPause: number
    private readonly wantedPort: number
    private readonly net: NetServer
    private readonly links = new Map<string, V1ServerLink>()
    private readonly sockets = new Set<Socket>()
    private readonly waiting: Waiting[] = []
    private readonly sig = new Signal()
    private loop: Promise<void> | undefined
    private closed = false

    constructor(opts: V1ServerOptions) {
        this.timeout = opts.timeout
        this.settle = opts.settle ?? 200
        this.acceptPause = opts.acceptPause ?? 200
        this.wantedPort = opts.port ?? 0
        this.net = createServer((s) => this.accept(s))
    }

    async listen(): Promise<void> {
        await new Promise<void>((resolve, reject) => {
            this.net.once("error", reject)
            this.net.listen(this.wantedPort, "127.0.0.1", () => resolve())
        })
        const a = this.net.address()
        this.port = typeof a === "object" && a ? a.port : 0
        this.loop = this.acceptLoop()
    }

    // The link of `id` (created empty if that id has not connected yet).
    link(id: string): V1ServerLink {
        let l = this.links.get(id)
        if (!l) {
            l = new V1ServerLink(id, this.timeout, this.settle)
            this.links.set(id, l)
        }
        return l
    }

    readline(id: string): Promise<string> {
        return this.link(id).readline()
    }

    write(id: string, line: string, opts?: V1WriteOptions): Promise<void> {
        return this.link(id).write(line, opts)
    }

    connected(id: string): Promise<void> {
        return this.link(id).connected()
    }

    // Force-closes the client's current socket (an outage at this end).
    kill(id: string): void {
        this.links.get(id)?.kill()
    }

    // Every line received from every client, keepalives included.
    rawLines(): string[] {
        return [...this.links.values()].flatMap((l) => l.rawLines)
    }

    async close(): Promise<void> {
        if (this.closed) return
        this.closed = true
        this.sig.fire()
        const done = new Promise<void>((resolve) => this.net.close(() => resolve()))
        for (const l of this.links.values()) l.shutdown()
        for (const s of this.sockets) s.destroy()
        await done
        await this.loop
    }

    private accept(s: Socket): void {
        if (this.closed) return void s.destroy()
        this.sockets.add(s)
        s.setNoDelay(true)
        s.on("error", () => {})
        // Bytes wait (in the kernel, for the original) until the loop reads the id.
        const w: Waiting = { s, head: Buffer.alloc(0), gone: false, detach: () => {} }
        const onData = (b: Buffer) => {
            w.head = Buffer.concat([w.head, b])
            this.sig.fire()
        }
        s.on("data", onData)
        w.detach = () => s.off("data", onData)
        s.once("close", () => {
            this.sockets.delete(s)
            w.gone = true
            this.sig.fire()
        })
        this.waiting.push(w)
        this.sig.fire()
    }

    private async acceptLoop(): Promise<void> {
        while (!this.closed) {
            const w = this.waiting.shift()
            if (w) this.readId(w, await this.idLine(w))
            const end = Date.now() + this.acceptPause
            while (!this.closed && Date.now() < end) await this.sig.next(end - Date.now())
            while (!this.closed && this.waiting.length === 0) await this.sig.next()
        }
    }

    // Resolves with the index of the id's '\n' in `w.head`, or -1.
    private async idLine(w: Waiting): Promise<number> {
        const end = Date.now() + this.timeout
        while (!this.closed && !w.gone && Date.now() <= end) {
            const nl = w.head.indexOf(10)
            if (nl >= 0) return nl
            await this.sig.next(end - Date.now())
        }
        return -1
    }

    private readId(w: Waiting, nl: number): void {
        w.detach()
        if (nl < 0 || this.closed) {
            if (!w.gone && !this.closed) this.noId++
            return void w.s.destroy()
        }
        // The id came in reads of at most 4096 bytes: what followed it in
        // that read is the rest; later bytes are later reads.
        const end = Math.min(w.head.length, (Math.floor(nl / V1_SERVER_READ) + 1) * V1_SERVER_READ)
        this.route(w.s, w.head.subarray(0, nl).toString("utf8"), w.head.subarray(nl + 1, end), w.head.subarray(end))
    }

    private route(s: Socket, id: string, rest: Buffer, more: Buffer): void {
        const l = this.link(id)
        if (l.sock) {
            this.refused++ // the id's link is up: refused
            return void s.destroy()
        }
        const first = l.connects === 0
        if (!first) this.droppedAfterId += rest.length // the quirk: a reconnect loses what came with the id
        l.adopt(s, first, rest, more)
    }
}
