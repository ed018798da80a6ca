// One end of a devs-iot link, as a pure state machine (h11 / quinn-proto
// style): bytes and `now` go in; bytes to send, events for the application
// and the next deadline come out. No sockets, timers or platform calls.
//
// A Link lives as long as the logical connection (a client process, or a
// server's Connection for one client id). Each TCP socket gets a fresh
// `SocketState` with its own framer, timers and handshake, so nothing of a
// dead socket leaks into the next one (fault 2). Kept across sockets: the
// send window and queue, the id sequence, the set of seen ids, the receive
// queue.
//
// This file is the part both ends share: the data phase (keepalive, outage,
// ACKs, receive queue, back-pressure, delivery state). Each end's handshake
// and its own lines are in its subclass: ClientLink (clientlink.ts, the only
// one a board compiles) and ServerLink (serverlink.ts).
//
// Driving it: open() when a socket is up (on the server, after the id line);
// receive() each chunk, then step() until it returns false (yield between
// steps on the board); after any call, pollTransmit() until undefined and
// pollEvent() until undefined; arm one timer for pollTimeout() and call
// handleTimeout() when it fires. When wantsRead() is false, stop reading the
// socket until read() frees room. The application's read(now) takes a line;
// call release() once its code for that line has run, which sends the ACK.

import { parseLine, ackLine, KEEPALIVE_LINE, Line } from "./codec.js"
import { LinkConfig, V1_SERVER_INFLIGHT, V1_WINDOW } from "./config.js"
import { SeenIds } from "./dedup.js"
import { LinkError, LinkErrorCode } from "./errors.js"
import { LineFramer } from "./framer.js"
import { previewBytes } from "./hex.js"
import { Fifo } from "./queue.js"
import { Sender } from "./sender.js"
import type { Session } from "./seal.js"
import type { Report } from "./report.js"
import { HANDSHAKE_LINE_MAX, idOfHead, parseTooLong, tooLongLine } from "./limits.js"

export type Peer = "v1" | "devs-iot"

export type NoticeCode =
    | "bad-line" // not a keepalive, ACK, message or known extension (fault 4)
    | "too-long" // a line over the maximum was skipped (a message: refused, see limits.ts)
    | "line-refused" // the peer refused a line of ours as too long: that write failed (ETOOLONG)
    | "dropped" // receive queue and backlog full on the board: not kept, not ACKed (fault 6)
    | "duplicate" // a message id already seen: ACKed, not delivered
    | "resend" // a qos message sent again
    | "stray-ack" // an ACK for no un-ACKed message
    | "no-hello" // a devs-iot client did not finish the extension handshake
    | "auth" // authentication failed, or a sealed line did not verify: the connection is closed
    | "refused" // the server refused this client (refusal.ts), or is none (clientlink.ts): the connection is closed

export type LinkEvent =
    | { type: "up"; peer: Peer }
    | { type: "down"; reason: string }
    | { type: "readable" }
    | { type: "written"; ticket: number }
    | { type: "failed"; ticket: number; error: LinkError }
    | { type: "close"; reason: string } // the driver must close the socket
    | { type: "keepalive" }
    | { type: "notice"; code: NoticeCode; detail: string }
    | { type: "report"; report: Report } // a devs-iot peer's report of itself (report.ts)
    | { type: "rekey"; key: Buffer; kcv: string } // client: the server pushed its next key (rekey.ts); confirmKey() (keyed.ts) once stored
    | { type: "rekeyed"; kcv: string } // server: the client stored the pushed key whose check value is kcv

export interface LinkStats {
    received: number // messages delivered to the receive queue
    duplicates: number
    dropped: number
    badLines: number
    tooLong: number
    resent: number
    keepalives: number // received once up
    strayAcks: number
    roundTrip: number // ms from a message's send to its ACK, the last sample (-1: none yet)
    roundTrips: number // samples taken
}

// Handshake phases of one socket (docs/protocol.md, "Handshake"). Each end's
// table, with its transitions, is at the top of its file: the client's
// ("first-line", "auth", "asked") in clientlink.ts, the server's ("probe",
// "warmup", "hello") in serverlink.ts. "up" is the data phase, here; the
// server's "warmup" already carries a v1 client's messages.
export type Phase = "first-line" | "probe" | "warmup" | "hello" | "auth" | "asked" | "up"

// A message kept for the application. Its ACK waits until the application
// has taken it (read, then release): a line ACKed before its reader ran would
// be lost if this process died in between. An application that has not read
// for ackDelay ms gets its unread lines ACKed anyway, so two ends that both
// write before they read do not wait for each other.
//
// Once due, the ACK leaves at once on the socket the line came on, whatever
// its phase. On a later socket it leaves only once the peer has proved the
// same epoch; toward a peer that cannot (v1), it is dropped when that socket
// comes up, and the peer's resend is ACKed as a duplicate.
export class Kept {
    payload: string
    bytes: number
    id: number
    at: number // when it was kept
    sock: number // the socket it came on (SocketState.serial)
    acked = false // released, or due after ackDelay: the ACK is sent, held or dropped
    taken = false // the application read it
    key = -1 // its record as a kept line (store.ts), -1: none

    constructor(payload: string, bytes: number, id: number, at: number, sock: number) {
        this.payload = payload
        this.bytes = bytes
        this.id = id
        this.at = at
        this.sock = sock
    }
}

// One TCP socket of a Link: its framer, timers, handshake phase and session.
// Each end adds its handshake's fields (ClientSocket, ServerSocket).
export class SocketState {
    serial: number // this socket's number within the Link
    framer: LineFramer
    phase: Phase
    peer: Peer = "v1"
    exact = false // the peer's epoch is known: restarts are exact (fault 1)
    zeroSeen = false // v1 rule: only the first 00 on a socket clears the set
    lastRecv: number
    lastSend: number
    wrote = false // a line went out on this socket
    gotLine: boolean
    firstByteAt = -1 // first byte received (the server's warm-up counts from it)
    out = "" // control lines to send: id, probe, hello, ACKs, keepalive
    // Message lines waiting, un-ACKed and in order, for room in the receive
    // queue. Lines behind them that are not messages (ACKs above all) are
    // still handled, so a full queue never hides the ACK its own application
    // is waiting for. (Typed: inferred, the declaration would read
    // Buffer<ArrayBufferLike>, which Node's types before TypeScript 5.7 lack.)
    backlog: Fifo<Buffer> = new Fifo<Buffer>()
    backlogBytes = 0
    // The id of a message dropped for a full queue (a board, a devs-iot
    // peer): later ones are dropped too until it comes again (-1: none).
    gap = -1
    gapAt = 0
    session: Session | undefined = undefined // set: every line is sealed (seal.ts)
    pre = "" // plain lines still to send when the session started
    secret = false // the line being handled came encrypted ("!e") and verified

    // `gotLine`: a line already came (the server opens a socket once it has
    // read the id line).
    constructor(serial: number, phase: Phase, now: number, frameLimit: number, gotLine: boolean) {
        this.serial = serial
        this.framer = new LineFramer(frameLimit)
        this.phase = phase
        this.lastRecv = now
        this.lastSend = now
        this.gotLine = gotLine
    }
}

// What both ends share. `S`: the end's socket state with its handshake fields.
export abstract class Link<S extends SocketState = SocketState> {
    readonly cfg: LinkConfig
    readonly epoch: string
    readonly stats: LinkStats = { received: 0, duplicates: 0, dropped: 0, badLines: 0, tooLong: 0, resent: 0, keepalives: 0, strayAcks: 0, roundTrip: -1, roundTrips: 0 }
    connects = 0 // sockets that completed the handshake
    // Fields without `private` below are read or restored by the free
    // functions of records.ts, relay.ts and linkinfo.ts, kept out of the
    // class so that a board compiles none of them; nothing else uses them.
    conn: S | undefined = undefined
    protected up = false
    closed = false
    seen = new SeenIds()
    peerEpoch: string | undefined = undefined
    sender: Sender
    inbox = new Fifo<Kept>() // un-ACKed ones are a suffix, `unacked` long
    inboxBytes = 0
    unacked = 0
    taken = new Fifo<Kept>() // read, ACK not yet released
    holding = new Fifo<Kept>() // read with hold(): ACK only at settle(), never by ackDelay
    lastRead = -1 // when the application last read
    private owing = Buffer.alloc(256) // per id: kept lines whose ACK is owed (saturates at 255)
    private held = new Fifo<Kept>() // due ACKs of lines from an earlier socket, until this one's peer is known
    private sockets = 0 // sockets opened: the next socket's serial
    events = new Fifo<LinkEvent>() // the keyed client's steps (keyed.ts) push "rekey"
    private written: number[] = []

    // `epoch`: a random token drawn by the driver when this id sequence starts.
    constructor(cfg: LinkConfig, epoch: string) {
        this.cfg = cfg
        this.epoch = epoch
        this.sender = new Sender(cfg) // its limits are settings of the link
    }

    // ---- the application's side

    // Queues a line; returns the ticket a "written" or "failed" event names.
    // `id`: the wire id a relay chose (relay.ts, writeAs()).
    write(line: string, qos: boolean, wait: boolean, id?: number): number {
        if (this.closed) throw new LinkError("ECLOSED", "link is closed")
        return this.sender.enqueue(line, qos, wait, id === undefined ? -1 : id)
    }

    // The next received line, or undefined. Its ACK is owed until release().
    read(now: number): string | undefined {
        this.lastRead = now
        const k = this.inbox.shift()
        if (!k) return undefined
        this.inboxBytes -= k.bytes
        k.taken = true
        if (!k.acked) {
            this.unacked--
            this.taken.push(k)
        }
        return k.payload
    }

    // The application has handled the lines it read: ACK them. Drivers call
    // this once the reader's code has run (Node: setImmediate; the board: its
    // next flush), so a crash before that loses no ACKed line.
    release(): void {
        for (let k = this.taken.shift(); k; k = this.taken.shift()) this.ack(k)
    }

    status(): boolean {
        return this.up
    }

    // Received bytes not yet cut into lines (the board caps this).
    unframed(): number {
        return this.conn ? this.conn.framer.buffered() : 0
    }

    // Closes the link for good: writes not yet complete fail with ECLOSED.
    close(now: number): void {
        if (this.closed) return
        this.closed = true
        if (this.conn) this.lose(now, "closed by the application", true)
        const tickets = this.sender.failAll()
        for (let i = 0; i < tickets.length; i++)
            this.writeFailed(tickets[i], "ECLOSED", "link closed before the write completed")
    }

    // ---- the driver's side

    // A new socket is up (the server: after the id line). A socket still
    // open is forgotten: the driver closes it.
    abstract open(now: number): void

    // A new socket, or undefined once the link is closed. `why`: what the
    // socket still open (if any) is told.
    protected attach(now: number, why: string, frameLimit: number): S | undefined {
        if (this.closed) return undefined
        if (this.conn) this.lose(now, why, false)
        const c = this.newSocket(this.sockets++, now, Math.max(frameLimit, HANDSHAKE_LINE_MAX))
        this.conn = c
        return c
    }

    receive(chunk: Buffer, now: number): void {
        const c = this.conn
        if (!c || chunk.length === 0) return
        c.framer.push(chunk)
        // On a sealed link only a line that verifies shows the peer alive:
        // injected bytes must not keep a dead link looking up.
        if (!c.session) c.lastRecv = now
        if (c.firstByteAt < 0) c.firstByteAt = now
    }

    // Handles at most one received line; true when it should be called again.
    step(now: number): boolean {
        const c = this.conn
        if (!c) return false
        const head = c.backlog.peek()
        if (head !== undefined && this.hasRoom(head.length - 2)) {
            if (this.paused(c)) c.lastRecv = now // reading was paused, not the peer
            c.backlog.shift()
            c.backlogBytes -= head.length
            const m = parseLine(head)
            if (m.kind === "message") this.handleMessage(c, m.id, m.payload, head.length - 2, now)
            return true
        }
        if (this.paused(c)) return false
        const f = c.framer.next()
        if (!f) return false
        if (f.kind === "too-long") {
            if (c.session) {
                this.authFail(now, "over-long line on an authenticated link")
                return false
            }
            this.handshakeTooLong(c)
            const id = carriesMessages(c) ? idOfHead(f.head) : -1
            if (id >= 0) this.refuseTooLong(c, id, -1)
            else {
                this.stats.tooLong++
                this.notice("too-long", "skipped a line longer than " + (f.limit - 2) + " bytes of payload")
            }
            return true
        }
        c.gotLine = true
        let line = f.line
        if (c.session) {
            const o = c.session.open(line)
            if (!o.ok) {
                this.authFail(now, o.reason)
                return false
            }
            c.secret = line[1] === 101
            line = o.body
            c.lastRecv = now
        }
        this.handleLine(c, line, now)
        return this.conn === c
    }

    // The socket closed (peer FIN/RST, error, or the driver closed it).
    socketClosed(now: number, reason: string): void {
        if (this.conn) this.lose(now, reason, false)
    }

    handleTimeout(now: number): void {
        const c = this.conn
        if (!c) return
        this.ackDue(now)
        if (!this.paused(c)) {
            const limit = this.silenceLimit(c)
            if (now >= c.lastRecv + limit) {
                this.lose(now, "nothing received for " + limit + " ms", true)
                return
            }
        }
        if (c.phase !== "up" && this.handshakeTimeout(c, now)) return
        if (this.up) {
            const ids = this.sender.expire(now)
            for (let i = 0; i < ids.length; i++) {
                this.stats.resent++
                this.notice("resend", "no ACK for message " + ids[i] + " within " + this.cfg.timeout + " ms")
            }
        }
        const k = this.keepaliveAt(c)
        if (k >= 0 && now >= k) c.out = KEEPALIVE_LINE
    }

    // When handleTimeout next has work, or -1 (no socket).
    pollTimeout(): number {
        const c = this.conn
        if (!c) return -1
        let t = this.keepaliveAt(c)
        if (!this.paused(c)) t = min(t, c.lastRecv + this.silenceLimit(c))
        if (c.phase !== "up") t = min(t, this.handshakeDeadline(c))
        if (this.up) {
            const e = this.sender.nextExpiry()
            if (e >= 0) t = min(t, e)
        }
        return min(t, this.ackDeadline())
    }

    // Bytes to write, or undefined: control lines first, then messages.
    pollTransmit(now: number): Buffer | undefined {
        const c = this.conn
        if (!c) return undefined
        const parts: Buffer[] = []
        let total = 0
        const s = c.session
        if (s !== undefined) total = s.sealControl(c, parts)
        else if (c.out.length > 0) {
            const b = Buffer.from(c.out)
            parts.push(b)
            total = b.length
        }
        c.out = ""
        if (this.up) {
            this.sender.admit()
            while (total < this.cfg.maxWriteBytes) {
                let b = this.sender.nextLine(now, this.written)
                if (b === undefined) break
                if (s !== undefined) b = s.seal(b.slice(0, b.length - 1))
                parts.push(b)
                total += b.length
            }
            for (let i = 0; i < this.written.length; i++) this.events.push({ type: "written", ticket: this.written[i] })
            this.written = []
        }
        if (parts.length === 0) return undefined
        c.lastSend = now
        c.wrote = true
        if (parts.length === 1) return parts[0]
        const out = Buffer.alloc(total)
        let off = 0
        for (let i = 0; i < parts.length; i++) {
            out.set(parts[i], off)
            off += parts[i].length
        }
        return out
    }

    pollEvent(): LinkEvent | undefined {
        return this.events.shift()
    }

    // ---- each end's handshake and its own lines (clientlink.ts, serverlink.ts)
    // The methods of this part and of the data phase without `protected`
    // are called by the keyed client's steps too (keyed.ts: outside the
    // class, so that a board built without a key compiles none of them).

    // A fresh socket state in this end's first phase.
    protected abstract newSocket(serial: number, now: number, frameLimit: number): S
    // A line received before "up": true when the handshake took it; false
    // when it goes on to the data phase.
    protected abstract handshakeLine(c: S, l: Line, now: number): boolean
    // A line cut as too long before "up".
    protected abstract handshakeTooLong(c: S): void
    // The handshake's deadlines before "up": true when the socket was lost.
    protected abstract handshakeTimeout(c: S, now: number): boolean
    // When handshakeTimeout() next has work, or -1.
    protected abstract handshakeDeadline(c: S): number
    // An extension line this end takes (`text`, the raw `line`): true when
    // handled.
    protected abstract handleExt(c: S, text: string, line: Buffer, now: number): boolean
    // This end is a client: its peer is a server.
    protected abstract towardServer(): boolean

    // A key push line ("!rekey", "!rekeyed", rekey.ts) that is not taken:
    // `why`, or (undefined) that it came where none is taken. Never
    // previewed in a notice: it holds a key.
    dropKeyLine(why: string | undefined): void {
        this.stats.badLines++
        this.notice("bad-line", why || "key push line dropped: not on an authenticated, encrypted link")
    }

    // ---- inside

    // A message over maxLineBytes (`bytes`, -1: cut by the framer) is never
    // left un-ACKed, or its sender would resend it for ever: a peer that
    // announced its limit is told (it fails the write), any other gets the
    // ACK. Never delivered; a v1 peer's 00 still counts as its restart.
    private refuseTooLong(c: S, id: number, bytes: number): void {
        this.zeroRestart(c, id)
        this.stats.tooLong++
        const max = this.cfg.maxLineBytes
        const told = c.peer === "devs-iot" && this.sender.peerMax > 0
        c.out += told ? tooLongLine(id, max) : ackLine(id)
        this.notice(
            "too-long",
            (told ? "refused" : "dropped") + " message " + id + " (" + (bytes < 0 ? "more than " + max : "" + bytes) + " bytes, over the limit of " + max + "): " + (told ? "dropped, the sender told" : "ACKed, as the sender cannot be told")
        )
    }

    // The peer refused our message `id` as too long (limit `max`, -1: not said).
    private lineRefused(id: number, max: number): void {
        const t = this.sender.refuse(id)
        if (max > 0) this.learnMax(max)
        if (t < 0) return
        const why = "the peer refused message " + id + " as longer than its limit" + (max > 0 ? " of " + max + " bytes" : "")
        this.notice("line-refused", why)
        if (t > 0) this.writeFailed(t, "ETOOLONG", why)
    }

    // The peer's hello announced its limit (or not: -1). Queued writes over
    // it fail now rather than be refused on arrival.
    learnMax(max: number): void {
        this.sender.peerMax = max
        if (max < 0) return
        const failed = this.sender.failLonger(max)
        for (let i = 0; i < failed.length; i++)
            this.writeFailed(failed[i], "ETOOLONG", "line is longer than the peer's limit of " + max + " bytes (from its hello)")
    }

    // The outage rule: nothing received for this long loses the socket
    // (twice the timeout before its first line).
    private silenceLimit(c: S): number {
        return c.gotLine ? this.cfg.timeout : 2 * this.cfg.timeout
    }

    // When a keepalive falls due, or -1. None while something waits to be
    // sent (the driver flushes when the socket can take it), nor while a
    // keyed client waits for the server's proof (the server's next reader
    // is sealed, and a plain line would close it).
    private keepaliveAt(c: S): number {
        if (c.out.length > 0 || (this.up && this.sender.hasUnsent())) return -1
        if (c.phase === "auth") return -1
        return c.lastSend + this.keepaliveEvery()
    }

    protected keepaliveEvery(): number {
        return Math.floor(this.cfg.timeout / 4)
    }

    // The handshake's phases first (each end's own), then the data phase.
    private handleLine(c: S, line: Buffer, now: number): void {
        const l = parseLine(line)
        if (c.phase !== "up" && this.handshakeLine(c, l, now)) return
        switch (l.kind) {
            case "keepalive":
                this.stats.keepalives++
                if (this.cfg.keepaliveEvents) this.events.push({ type: "keepalive" })
                return
            case "ack": {
                const resent: number[] = []
                const t = this.sender.ack(l.id, resent)
                if (t >= 0 && this.sender.ackedSentAt >= 0) {
                    this.stats.roundTrip = now - this.sender.ackedSentAt
                    this.stats.roundTrips++
                }
                if (t > 0) this.events.push({ type: "written", ticket: t })
                else if (t < 0) {
                    this.stats.strayAcks++
                    this.notice("stray-ack", "ACK " + l.id + " matches no message awaiting one")
                }
                for (let i = 0; i < resent.length; i++) {
                    this.stats.resent++
                    this.notice("resend", "message " + resent[i] + " was not ACKed before " + l.id + ": dropped by the peer")
                }
                return
            }
            case "message": {
                const bytes = line.length - 2 // the payload's
                // A sealed line may be framed past the limit (hex, MAC).
                if (bytes > this.cfg.maxLineBytes) this.refuseTooLong(c, l.id, bytes)
                else if (this.behindGap(c, l.id, now)) return
                else if (c.backlog.size() > 0 || !this.hasRoom(bytes)) this.wait(c, line, l.id, now)
                else this.handleMessage(c, l.id, l.payload, bytes, now)
                return
            }
            case "ext": {
                // This end's own lines (a refusal, a key push, a report),
                // then the peer's refusal of a line of ours as too long
                // (limits.ts).
                if (this.handleExt(c, l.text, line, now)) return
                const r = c.phase === "up" ? parseTooLong(l.text) : undefined
                if (r) this.lineRefused(r.id, r.max)
                else this.bad("extension line out of place", line)
                return
            }
            case "bad":
                this.bad(l.reason, line)
                return
        }
    }

    // A message that finds the receive queue full (or others waiting) waits
    // in the backlog, un-ACKed. Past the backlog, Node stops reading (see
    // paused()); the board, whose runtime reads the socket whatever we do,
    // drops it un-ACKed, and the sender's resend brings it back (fault 6).
    private wait(c: S, line: Buffer, id: number, now: number): void {
        if (this.cfg.onFull === "drop" && c.backlogBytes + line.length > this.cfg.maxBacklogBytes) {
            this.stats.dropped++
            if (c.peer === "devs-iot" && c.gap < 0) {
                c.gap = id
                c.gapAt = now
            }
            this.notice("dropped", "receive queue and backlog full: message " + id + " dropped without ACK" + (c.gap === id ? ", and later ones until it is resent" : ""))
            return
        }
        c.backlog.push(line)
        c.backlogBytes += line.length
    }

    // Order after a drop: a devs-iot sender resends in order, so lines that
    // came after the dropped one are dropped too until it comes again, and
    // none overtakes it (wait=false lines keep their order; the gateway's
    // down lines rely on it). A v1 sender keeps v1's rule: no such promise.
    // Bounded by 2 x timeout, for a dropped line that is never resent
    // (qos off).
    private behindGap(c: S, id: number, now: number): boolean {
        if (c.gap < 0) return false
        if (id !== c.gap && now - c.gapAt < 2 * this.cfg.timeout) {
            this.stats.dropped++
            return true
        }
        c.gap = -1
        return false
    }

    // Called only when the receive queue has room.
    private handleMessage(c: S, id: number, payload: string, bytes: number, now: number): void {
        this.zeroRestart(c, id)
        if (this.seen.has(id)) {
            this.stats.duplicates++
            // A resend of a line whose ACK is still owed gets that ACK later.
            if (this.owing[id] > 0) {
                this.notice("duplicate", "message " + id + " seen before: not delivered, ACK when it is read")
                return
            }
            c.out += ackLine(id)
            this.notice("duplicate", "message " + id + " seen before: ACKed, not delivered")
            return
        }
        this.seen.mark(id)
        const k = new Kept(payload, bytes, id, now, c.serial)
        this.inbox.push(k)
        this.inboxBytes += bytes
        this.stats.received++
        if (this.cfg.ackDelay === 0) this.ack(k)
        else {
            this.unacked++
            if (this.owing[id] < 255) this.owing[id]++
        }
        if (this.inbox.size() === 1) this.events.push({ type: "readable" })
    }

    // Fault 1. With a known epoch a restart is a new epoch, so 00 is an
    // ordinary id. A v1 peer gives no such marker: the first 00 on a socket
    // is taken as a restart, a later one on the same socket as a resend.
    private zeroRestart(c: S, id: number): void {
        if (!c.exact && id === 0 && !c.zeroSeen) {
            c.zeroSeen = true
            this.forget(c)
        }
    }

    // The ACK of a kept line is due: sent at once when this socket may carry
    // it (see Kept), held otherwise until the socket comes up.
    ack(k: Kept): void {
        if (k.acked) return
        k.acked = true
        const c = this.conn
        // Messages arrive only in "warmup" and "up", so a line's own socket
        // is always in one of them. A line from an earlier socket needs the
        // peer's proof of the same epoch, which comes with "up".
        if (c && (k.sock === c.serial ? carriesMessages(c) : c.phase === "up" && c.exact)) this.sendAck(c, k)
        else this.held.push(k)
    }

    // `k` is acked already (ack()): its ACK is no longer owed.
    private sendAck(c: S, k: Kept): void {
        this.unowe(k)
        c.out += ackLine(k.id)
    }

    // ACKs lines taken ackDelay ms after they arrived and not yet released,
    // and unread lines once the application has not read for ackDelay ms.
    private ackDue(now: number): void {
        const d = this.cfg.ackDelay
        for (let k = this.taken.peek(); k && k.at + d <= now; k = this.taken.peek()) {
            this.taken.shift()
            this.ack(k)
        }
        while (this.unacked > 0) {
            const k = this.inbox.at(this.inbox.size() - this.unacked)
            if (Math.max(k.at, this.lastRead) + d > now) break
            this.ack(k)
            this.unacked--
        }
    }

    // When ackDue() next has work, or -1. Taken lines came before unread ones.
    private ackDeadline(): number {
        const k = this.taken.peek()
        if (k) return k.at + this.cfg.ackDelay
        if (this.unacked === 0) return -1
        return Math.max(this.inbox.at(this.inbox.size() - this.unacked).at, this.lastRead) + this.cfg.ackDelay
    }

    // The peer restarted: ACKs owed to its earlier life are never sent.
    // (Not private: the delivery state's records, records.ts, follow it.)
    forget(c: S): void {
        this.seen.clear()
        this.dropOwed(c)
    }

    // ACKs owed for lines that came on an earlier socket than `c` are not
    // sent: the peer's resends are ACKed as duplicates. Lines that came on
    // `c` are from the peer's present life, and keep theirs.
    private dropOwed(c: S): void {
        const self = this
        // Held ACKs (due already) go the same way as owed ones.
        const keep = function (k: Kept): boolean {
            if (k.sock === c.serial) return true
            self.unowe(k)
            return false
        }
        this.taken.retain(keep)
        this.holding.retain(keep)
        this.held.retain(keep)
        // Unread un-ACKed lines are the inbox's suffix, oldest socket first.
        while (this.unacked > 0) {
            const k = this.inbox.at(this.inbox.size() - this.unacked)
            if (k.sock === c.serial) break
            this.unowe(k)
            this.unacked--
        }
    }

    // An owed ACK that is sent, or never will be.
    private unowe(k: Kept): void {
        k.acked = true
        if (this.owing[k.id] > 0) this.owing[k.id]--
    }

    // Node: a full backlog stops reading the socket (back-pressure); that
    // pause is not an outage.
    paused(c: S): boolean {
        return this.cfg.onFull === "pause" && c.backlog.size() > 0 && c.backlogBytes >= this.cfg.maxBacklogBytes
    }

    private hasRoom(bytes: number): boolean {
        return this.inbox.size() < this.cfg.maxReceivedLines && this.inboxBytes + bytes <= this.cfg.maxReceivedBytes
    }

    peerStarted(c: S, epoch: string): void {
        if (epoch === "") return // a hello without an epoch: v1 rules
        c.exact = true
        if (epoch !== this.peerEpoch) {
            this.peerEpoch = epoch
            this.forget(c)
        }
    }

    goUp(c: S): void {
        this.sender.towardPeer(
            // A v1 peer ACKs on receipt and keeps what it has not read in a
            // queue of V1_WINDOW lines: more in flight would overflow it
            // (towardPeer keeps within the window setting).
            c.peer === "v1" ? V1_WINDOW : this.cfg.window,
            // The original server takes each read of at most 4096 bytes on its own.
            c.peer === "v1" && this.towardServer() ? V1_SERVER_INFLIGHT : this.cfg.maxInflightBytes,
            // An original receiver clears its whole set of seen ids on every
            // 00 (fault 1). Toward a peer without the restart marker, send
            // nothing after 00 until 00 is ACKed: a resent 00 then cannot
            // take later ids with it.
            !c.exact
        )
        // ACKs owed from an earlier socket go on this one only to the same
        // life of the peer, which only an epoch proves.
        if (!c.exact) this.dropOwed(c)
        // A v1 peer announces no limit (one from an earlier devs-iot life is void).
        if (c.peer !== "devs-iot" && this.sender.peerMax >= 0) this.learnMax(-1)
        c.phase = "up"
        for (let k = this.held.shift(); k; k = this.held.shift()) this.sendAck(c, k)
        this.up = true
        this.connects++
        this.events.push({ type: "up", peer: c.peer })
    }

    protected lose(now: number, reason: string, tellDriver: boolean): void {
        this.conn = undefined
        this.sender.socketLost()
        if (tellDriver) this.events.push({ type: "close", reason: reason })
        if (this.up) {
            this.up = false
            this.events.push({ type: "down", reason: reason })
        }
    }

    // Authentication failed or a sealed line did not verify: nothing more of
    // this connection is used, and the driver closes it.
    authFail(now: number, reason: string): void {
        this.notice("auth", reason)
        this.lose(now, "authentication: " + reason, true)
    }

    private writeFailed(ticket: number, code: LinkErrorCode, why: string): void {
        this.events.push({ type: "failed", ticket: ticket, error: new LinkError(code, why) })
    }

    protected bad(reason: string, line: Buffer): void {
        this.stats.badLines++
        this.notice("bad-line", reason + ": " + previewBytes(line, 40))
    }

    protected notice(code: NoticeCode, detail: string): void {
        this.events.push({ type: "notice", code: code, detail: detail })
    }
}

// Messages arrive only in "warmup" (the server's, for a v1 client) and "up".
function carriesMessages(c: SocketState): boolean {
    return c.phase === "up" || c.phase === "warmup"
}

// The earlier of two deadlines, where -1 means none.
export function min(a: number, b: number): number {
    if (a < 0) return b
    if (b < 0) return a
    return Math.min(a, b)
}
