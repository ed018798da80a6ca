// Two links joined by an in-memory network with a virtual clock (the
// quinn-proto test pair). Time jumps to the next deadline or delivery; a
// bounded drive catches livelock. The network keeps TCP's promises (bytes in
// order per socket) and breaks the ones a fault proxy breaks: it drops or
// duplicates whole message/ACK lines, splits writes into small chunks, delays,
// and cuts sockets, telling both ends (FIN) or neither (a stall until an end
// sees the outage). Written in the DeviceScript subset: it runs in the VM too.

import { refusalLine } from "../../src/shared/refusal.js"
import { AuthOutcome, Backoff, Crypto, IdReader, ClientLink, Link, ServerLink, linkAuth, setAuth, LinkConfig, LinkEvent, MAX_ID_BYTES, ServerAuth } from "../../src/shared/index.js"
import { hexDigit } from "../../src/shared/hex.js"
import { hooks, Rng } from "./harness.js"

export interface Faults {
    lossPct: number // message and ACK lines dropped
    dupPct: number // message and ACK lines delivered twice
    cutEvery: number // mean ms between socket cuts; 0 for none
    silentPct: number // cuts that neither end is told of
    latency: number // one-way ms
    maxChunk: number // bytes per delivered chunk; 0 for whole writes
    until: number // no faults after this time (ms)
    slowReadPct?: number // chance that an application leaves its lines unread for a while
}

export function noFaults(): Faults {
    return { lossPct: 0, dupPct: 0, cutEvery: 0, silentPct: 0, latency: 1, maxChunk: 0, until: 0 }
}

interface Packet {
    at: number
    sock: number
    toServer: boolean
    data: Buffer
    chunk: number // delivered this many bytes at a time; 0 for all at once
}

// Writes `total` lines through a link, at most `window` outstanding, and
// records which completed. Payloads are "<tag>-<n>" so a checker can parse them.
export class Writer {
    sent = 0
    done: string[] = []
    failed = 0
    private byTicket: { [t: string]: string } = {}
    private outstanding = 0

    constructor(readonly tag: string, readonly total: number, readonly qos: boolean, readonly wait: boolean, readonly window: number) {}

    pump(link: Link | undefined): void {
        if (!link) return
        while (this.sent < this.total && this.outstanding < this.window) {
            const p = this.tag + "-" + this.sent
            let t = 0
            try {
                t = link.write(p, this.qos, this.wait)
            } catch (e) {
                return // queue full: try again later
            }
            this.byTicket["" + t] = p
            this.sent++
            this.outstanding++
        }
    }

    event(e: LinkEvent): void {
        if (e.type === "written" || e.type === "failed") {
            const p = this.byTicket["" + e.ticket]
            if (p === undefined) return
            delete this.byTicket["" + e.ticket]
            this.outstanding--
            if (e.type === "written") this.done.push(p)
            else this.failed++
        }
    }

    finished(): boolean {
        return this.sent === this.total && this.outstanding === 0
    }
}

export interface SimKeys {
    crypto: Crypto
    clientKey: Buffer | undefined
    serverKey: Buffer | undefined // the key the server holds for the client's id
    encrypt: boolean
    allowPlain: boolean // the id may stay plain
}

export class Sim {
    now = 0
    rng: Rng
    faults: Faults
    client: ClientLink
    server: ServerLink | undefined = undefined
    clientWriter: Writer | undefined = undefined
    serverWriter: Writer | undefined = undefined
    clientRx: string[] = []
    serverRx: string[] = []
    serverReads = true // false: the server application stops reading
    clientPeers = "" // the peer kind of each "up" the client saw
    counts: { [k: string]: number } = {} // "client up", "server notice", ...
    cuts = 0
    connects = 0
    wire: string[] = [] // every write, when recording
    record = false

    private packets: Packet[] = []
    private nextSock = 1
    private sock = 0 // the client's current socket, 0 for none
    private serverSock = 0 // the socket the server link is attached to
    private live: { [s: string]: boolean } = {}
    private idReaders: { [s: string]: IdReader } = {}
    private lastAt: { [k: string]: number } = {}
    private reconnectAt = 0
    private nextCut = -1
    private backoff = new Backoff(100, 1000)
    private epochs = 0
    private keys: SimKeys | undefined = undefined
    private auths: { [s: string]: ServerAuth } = {}
    outcomes: string[] = [] // server: each handshake outcome ("auth", "fail: ...", ...)

    constructor(readonly clientCfg: LinkConfig, readonly serverCfg: LinkConfig, faults: Faults, seed: number) {
        this.rng = new Rng(seed)
        this.faults = faults
        this.client = new ClientLink(clientCfg, this.newEpoch(), "board-1")
        this.scheduleCut()
    }

    // Keys: the client's, and the one the server holds for its id
    // (undefined: none). Applies to the client Link now and after restarts.
    useKeys(k: SimKeys): void {
        this.keys = k
        setAuth(this.client, linkAuth(k.crypto, k.clientKey, k.encrypt))
    }

    // An attacker on the path writes bytes into the current socket.
    inject(toServer: boolean, data: Buffer): void {
        if (this.sock === 0) return
        this.queue({ at: this.now, sock: this.sock, toServer: toServer, data: data, chunk: 0 })
    }

    // ---- faults a test can apply

    cut(silent: boolean): void {
        if (this.sock === 0) return
        this.cuts++
        const s = this.sock
        this.live["" + s] = false
        this.packets = this.packets.filter(function (p: Packet) {
            return p.sock !== s
        })
        if (silent) return
        this.clientLost("cut")
        if (this.serverSock === s && this.server) {
            this.server.socketClosed(this.now, "cut")
            this.serverSock = 0
        }
    }

    restartServer(): void {
        this.server = undefined
        this.serverSock = 0
        if (this.sock !== 0) {
            this.live["" + this.sock] = false
            this.clientLost("server restarted")
        }
    }

    restartClient(): void {
        if (this.sock !== 0) this.cut(false)
        this.client = new ClientLink(this.clientCfg, this.newEpoch(), "board-1")
        if (this.keys) this.useKeys(this.keys)
        this.reconnectAt = this.now
    }

    // ---- driving

    async run(done: () => boolean, limitMs: number): Promise<boolean> {
        const end = this.now + limitMs
        for (let iter = 0; iter < 2000000; iter++) {
            await this.pump()
            if (done()) return true
            const t = this.nextTime()
            if (t < 0 || t > end) return false
            if (t > this.now) this.now = t
            this.deliver()
            await hooks.pause()
        }
        throw new Error("simulation did not settle: livelock")
    }

    async runFor(ms: number): Promise<void> {
        const self = this
        const end = this.now + ms
        await this.run(function () {
            return false
        }, ms)
        if (self.now < end) self.now = end
    }

    // ---- inside

    // A slow application (while faults last): in the second half of every
    // 50 ms, each read is skipped with chance slowReadPct.
    private appReads(): boolean {
        const p = this.faults.slowReadPct
        if (p === undefined || p <= 0 || this.now >= this.faults.until) return true
        if (this.now % 50 < 25) return true
        return !this.rng.chance(p)
    }

    // Counts, not a log: a log of every event would outgrow the VM's heap.
    private tally(end: string, e: LinkEvent): void {
        const k = end + " " + e.type
        const n = this.counts[k]
        this.counts[k] = n === undefined ? 1 : n + 1
    }

    private newEpoch(): string {
        this.epochs++
        return "e" + this.epochs
    }

    private scheduleCut(): void {
        const f = this.faults
        if (f.cutEvery <= 0) {
            this.nextCut = -1
            return
        }
        const t = this.now + 1 + this.rng.int(2 * f.cutEvery)
        this.nextCut = t <= f.until ? t : -1
    }

    private clientLost(reason: string): void {
        this.client.socketClosed(this.now, reason)
        this.sock = 0
        this.reconnectAt = this.now + this.backoff.next(this.rng.next())
    }

    private nextTime(): number {
        let t = -1
        if (this.packets.length > 0) t = this.packets[0].at
        t = earliest(t, this.client.pollTimeout())
        if (this.server) t = earliest(t, this.server.pollTimeout())
        const ks = Object.keys(this.auths)
        for (let i = 0; i < ks.length; i++) t = earliest(t, this.auths[ks[i]].pollTimeout())
        if (this.sock === 0) t = earliest(t, this.reconnectAt)
        t = earliest(t, this.nextCut)
        return t
    }

    // At most a few packets per call, so the VM can yield between calls.
    private deliver(): void {
        for (let n = 0; n < 4 && this.packets.length > 0 && this.packets[0].at <= this.now; n++) {
            let p = this.packets.shift() as Packet
            if (!this.live["" + p.sock]) continue
            if (p.chunk > 0 && p.data.length > p.chunk) {
                // Cut chunks off as they are delivered: one packet object per write.
                const rest: Packet = { at: p.at, sock: p.sock, toServer: p.toServer, data: p.data.slice(p.chunk), chunk: p.chunk }
                p = { at: p.at, sock: p.sock, toServer: p.toServer, data: p.data.slice(0, p.chunk), chunk: 0 }
                this.packets.unshift(rest)
            }
            if (!p.toServer) {
                if (p.sock === this.sock) this.client.receive(p.data, this.now)
                continue
            }
            this.serverReceive(p.sock, p.data)
        }
        if (this.nextCut >= 0 && this.now >= this.nextCut) {
            this.cut(this.rng.chance(this.faults.silentPct))
            this.scheduleCut()
        }
        if (this.sock === 0 && this.now >= this.reconnectAt) this.connect()
    }

    private connect(): void {
        const s = this.nextSock++
        this.sock = s
        this.live["" + s] = true
        this.idReaders["" + s] = new IdReader(MAX_ID_BYTES)
        this.client.open(this.now)
    }

    private serverReceive(sock: number, data: Buffer): void {
        const r = this.idReaders["" + sock]
        if (r !== undefined) {
            r.push(data)
            const res = r.next()
            if (res === undefined) return
            delete this.idReaders["" + sock]
            if (res.kind === "bad") {
                this.live["" + sock] = false
                return
            }
            if (!this.server) this.server = new ServerLink(this.serverCfg, this.newEpoch())
            const k = this.keys
            if (k !== undefined && k.serverKey !== undefined) {
                const a = new ServerAuth(k.crypto, res.id, [k.serverKey], this.server.epoch, this.serverCfg.timeout, k.encrypt, this.now)
                this.auths["" + sock] = a
                for (let i = 0; i < res.rest.length; i++) a.push(res.rest[i])
                return
            }
            if (this.serverSock !== 0 && this.serverSock !== sock) this.live["" + this.serverSock] = false
            this.serverSock = sock
            this.server.open(this.now)
            for (let i = 0; i < res.rest.length; i++) this.server.receive(res.rest[i], this.now)
            return
        }
        const a = this.auths["" + sock]
        if (a !== undefined) {
            a.push(data)
            return
        }
        if (sock === this.serverSock && this.server) this.server.receive(data, this.now)
    }

    // Server handshakes of keyed sockets (authserver.ts).
    private pumpAuths(): boolean {
        let moved = false
        const ks = Object.keys(this.auths)
        for (let i = 0; i < ks.length; i++) {
            const sock = +ks[i]
            const a = this.auths[ks[i]]
            let o = a.step(this.now)
            if (o === undefined) o = a.handleTimeout(this.now)
            while (true) {
                const b = a.pollTransmit()
                if (b === undefined) break
                moved = true
                this.send(sock, false, b)
            }
            if (o !== undefined) {
                moved = true
                delete this.auths[ks[i]]
                this.authDone(sock, o)
            }
        }
        return moved
    }

    private authDone(sock: number, o: AuthOutcome): void {
        const l = this.server as ServerLink
        this.outcomes.push(o.kind === "fail" ? "fail: " + o.reason : o.kind)
        // A wrong key is answered with "!auth refused" (the server ends the
        // socket gracefully): the client reads it and closes.
        if (o.kind === "fail" && o.reason.indexOf("wrong key") === 0) return
        // A devs-iot client without the key is told why (refusal.ts), and closes.
        if (o.kind === "hello" && !(this.keys as SimKeys).allowPlain) {
            this.send(sock, false, Buffer.from(refusalLine("auth-required")))
            return
        }
        if (o.kind === "fail" || (o.kind !== "auth" && !(this.keys as SimKeys).allowPlain)) {
            this.live["" + sock] = false
            if (sock === this.sock) this.clientLost("refused")
            return
        }
        if (this.serverSock !== 0 && this.serverSock !== sock) this.live["" + this.serverSock] = false
        this.serverSock = sock
        if (o.kind === "auth") l.openAuthenticated(this.now, o.session, o.peerEpoch)
        else if (o.kind === "hello") l.openHelloed(this.now, o.peerEpoch)
        else l.open(this.now)
        for (let i = 0; i < o.rest.length; i++) l.receive(o.rest[i], this.now)
    }

    // Rounds of bounded work until nothing moves, yielding between rounds.
    private async pump(): Promise<void> {
        for (let round = 0; round < 100000; round++) {
            let moved = this.pumpClient()
            if (this.pumpAuths()) moved = true
            if (this.pumpServer()) moved = true
            if (!moved) return
            await hooks.pause()
        }
        throw new Error("simulation did not settle: livelock in pump")
    }

    private pumpClient(): boolean {
        return this.turn("client", this.client, this.sock, this.clientWriter, this.clientRx, true)
    }

    private pumpServer(): boolean {
        const l = this.server
        return l ? this.turn("server", l, this.serverSock, this.serverWriter, this.serverRx, this.serverReads) : false
    }

    // One turn of one end, as a shell drives its link: steps (at most 8 while
    // its socket is open), a due timer, its app's writes, bytes out, events,
    // its app's reads. True when anything moved.
    private turn(end: string, l: Link, sock: number, writer: Writer | undefined, rx: string[], reads: boolean): boolean {
        let moved = false
        if (sock !== 0) for (let n = 0; n < 8 && l.step(this.now); n++) moved = true
        const t = l.pollTimeout()
        if (t >= 0 && t <= this.now) l.handleTimeout(this.now)
        if (writer) writer.pump(l)
        l.release() // lines read in the last round
        while (true) {
            const b = l.pollTransmit(this.now)
            if (b === undefined) break
            moved = true
            this.send(sock, end === "client", b)
        }
        while (true) {
            const e = l.pollEvent()
            if (e === undefined) break
            moved = true
            this.tally(end, e)
            if (writer) writer.event(e)
            if (end === "client") this.clientEvent(e)
            else this.serverEvent(e)
        }
        while (reads && this.appReads()) {
            const s = l.read(this.now)
            if (s === undefined) break
            moved = true
            rx.push(s)
        }
        return moved
    }

    private clientEvent(e: LinkEvent): void {
        if (e.type === "close") {
            // The client closes its socket; a live one carries the FIN.
            const s = this.sock
            if (this.live["" + s] && this.serverSock === s && this.server) {
                this.server.socketClosed(this.now, "client closed")
                this.serverSock = 0
            }
            this.live["" + s] = false
            this.sock = 0
            this.reconnectAt = this.now + this.backoff.next(this.rng.next())
        } else if (e.type === "up") {
            this.clientPeers += e.peer
            this.connects++
            this.backoff = new Backoff(100, 1000) // a link came up: start over
        }
    }

    private serverEvent(e: LinkEvent): void {
        if (e.type === "close") {
            const s = this.serverSock
            this.serverSock = 0
            if (this.live["" + s] && s === this.sock) {
                this.live["" + s] = false
                this.clientLost("server closed")
            }
            this.live["" + s] = false
        }
    }

    private send(sock: number, toServer: boolean, data: Buffer): void {
        if (this.record) this.wire.push((toServer ? ">" : "<") + data.toString("utf-8"))
        if (sock === 0 || !this.live["" + sock]) return
        const f = this.faults
        let out = data
        if (this.now < f.until && (f.lossPct > 0 || f.dupPct > 0)) out = this.mangle(data)
        const key = sock + (toServer ? ">" : "<")
        const prev = this.lastAt[key]
        let at = this.now + f.latency
        if (prev !== undefined && prev > at) at = prev
        this.lastAt[key] = at
        const chunk = f.maxChunk > 0 && this.now < f.until ? f.maxChunk : 0
        if (out.length > 0) this.queue({ at: at, sock: sock, toServer: toServer, data: out, chunk: chunk })
    }

    // Drops or doubles message and ACK lines, never handshake lines.
    private mangle(data: Buffer): Buffer {
        const keep: Buffer[] = []
        let total = 0
        let start = 0
        while (start < data.length) {
            let nl = data.indexOf(10, start)
            if (nl < 0) nl = data.length - 1
            const line = data.slice(start, nl + 1)
            start = nl + 1
            let copies = 1
            // v1 messages and ACKs, and sealed ones (a sealed keepalive is 43 bytes).
            const sealed = line.length >= 45 && line[0] === 33 && (line[1] === 109 || line[1] === 101)
            if ((line.length >= 3 && hexDigit(line[0]) >= 0 && hexDigit(line[1]) >= 0) || sealed) {
                if (this.rng.chance(this.faults.lossPct)) copies = 0
                else if (this.rng.chance(this.faults.dupPct)) copies = 2
            }
            for (let i = 0; i < copies; i++) {
                keep.push(line)
                total += line.length
            }
        }
        const out = Buffer.alloc(total)
        let off = 0
        for (let i = 0; i < keep.length; i++) {
            out.set(keep[i], off)
            off += keep[i].length
        }
        return out
    }

    private queue(p: Packet): void {
        // Stable insert by time: equal times keep their order.
        let i = this.packets.length
        while (i > 0 && this.packets[i - 1].at > p.at) i--
        if (i === this.packets.length) this.packets.push(p)
        else {
            const rest = this.packets.slice(i)
            this.packets = this.packets.slice(0, i)
            this.packets.push(p)
            for (let j = 0; j < rest.length; j++) this.packets.push(rest[j])
        }
    }
}

function earliest(a: number, b: number): number {
    if (b < 0) return a
    if (a < 0) return b
    return a < b ? a : b
}

// Exactly-once check of the lines a Writer with tag `tag` completed against
// what the other end received. Returns "" or the first problem found.
export function checkDelivery(w: Writer, received: string[], inOrder: boolean): string {
    // Counts by line number in one byte each: an object keyed by payload,
    // then an array of numbers, ran the VM out of heap in the 300-line cases.
    const count = Buffer.alloc(w.total)
    const prefix = w.tag + "-"
    let last = -1
    for (let i = 0; i < received.length; i++) {
        const p = received[i]
        if (p.indexOf(prefix) !== 0) continue
        const n = +p.slice(prefix.length)
        if (!(n >= 0 && n < w.total)) return "not a line of " + w.tag + ": " + p
        if (count[n] > 0) return "duplicate " + p
        count[n] = 1
        if (inOrder && n < last) return "out of order: " + p + " after " + w.tag + "-" + last
        if (n > last) last = n
    }
    if (!w.qos) return ""
    for (let i = 0; i < w.done.length; i++) {
        const n = +w.done[i].slice(prefix.length)
        if (n >= count.length || count[n] === 0) return "lost " + w.done[i]
    }
    return ""
}
