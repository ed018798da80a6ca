// The sending half of a link: the queue of writes, message ids, the send
// window, ACK matching and retransmission (docs/protocol.md, "Quality of service").
//
// Rules, each named where it is applied:
// - window: the ids from the oldest un-ACKed one to the next one to assign
//   span fewer than `window` (< 120), so a receiver's dedup set still holds
//   any id this sender may resend; un-ACKed bytes stay under `maxInflightBytes`.
//   The link narrows the window per peer (towardPeer: toward a v1 peer, what
//   its receive queue holds); lines admitted under a wider one wait to be
//   sent until fewer than `window` are on the wire.
// - wait: a qos write with wait is sent only when no qos message is un-ACKed
//   and no earlier wait write is still queued, so wait writes arrive in order.
// - fault 5: a non-qos message is forgotten when its ACK has not come within
//   `timeout`, or when its socket closes; it never blocks anything for longer.
// - gaps: a forgotten message may never have arrived, so its id keeps its
//   place in the window until an ACK for a later id shows the receiver got
//   past it. New ids thus stay within `window` of an id the receiver marked,
//   which its de-duplication set needs (dedup.ts). When forgotten ids fill
//   the window and nothing is in flight, the newest forgotten one is sent
//   again as a probe: the receiver delivers it at most once, and its ACK
//   opens the window.
// - resend: a qos message is sent again after `timeout` without ACK, and
//   after every reconnect, with the same id, until ACKed. A timeout resend
//   takes every later qos message on the wire with it (go-back-N), so
//   resends go in id order (a board keeps order after a drop: link.ts).
// - chosen ids (relay.ts, writeAs): a relay whose ids come from elsewhere names the
//   wire id (the MQTT gateway, from the broker's packet ids:
//   docs/protocol.md, "The MQTT gateway"); the sequence skips forward to it,
//   so ids still only move forward and 00 is never sent again. So a write
//   with a chosen id is never admitted ahead of one queued before it.
// - fast resend: a receiver handles lines in order and ACKs each one it keeps
//   in that order, so an ACK for a later transmission on the same socket
//   means an earlier un-ACKed one was dropped (full receive queue, fault 6):
//   it is resent at once instead of after `timeout`. An ACK for a line sent
//   more than once may answer its first transmission, so only lines sent
//   before that one count as dropped: a slow reader's ACK arriving just
//   after a timeout resend must not send the whole window again.
// - congestion: a receiver that drops is slower than the sender, so each
//   fast resend halves the number of messages in flight (`cwnd`), and each
//   clean ACK adds one back, up to `window` (AIMD, as TCP does).

import { LinkError } from "./errors.js"
import { hexByte } from "./hex.js"
import { Fifo } from "./queue.js"
import { wireId, SEQ_LIMIT, SEQ_SHIFT } from "./ids.js"

export interface Outgoing {
    ticket: number
    qos: boolean
    wait: boolean
    payload: Buffer // UTF-8 bytes of the line, without "\n"
    seq: number // -1 until admitted into the window
    id: number
    sentAt: number // -1: to be sent (again)
    txOrder: number // position of its last transmission on the current socket
    firstTx: number // position of its first transmission on the current socket, or -1
    gone: boolean // a forgotten non-qos message holding its id's place
    key: number // its record in the delivery store (store.ts), -1: none
    want: number // the wire id chosen by the writer (1..255), -1: the next one
}

export interface SenderLimits {
    timeout: number
    maxLineBytes: number
    window: number
    maxInflightBytes: number
    maxQueuedLines: number
    maxQueuedBytes: number
}

export class Sender {
    // Not private: records.ts restores the lines an earlier life owed, and
    // keeps nextSeq (no id is used twice); linkinfo.ts counts the writes.
    queue = new Fifo<Outgoing>()
    queuedBytes = 0
    queuedNoWait = 0 // queued writes that may overtake a blocked wait write
    inflight = new Fifo<Outgoing>() // in seq order, forgotten ones too
    live = 0 // entries of inflight not gone
    private probe: Outgoing | undefined = undefined // the newest gone entry, payload kept
    inflightBytes = 0
    inflightQos = 0
    nextSeq = 0
    private nextTicket = 1
    private txCount = 0 // transmissions on the current socket
    private window: number // the window in force (<= limits.window)
    private maxBytes: number // the un-ACKed bytes in force (<= limits.maxInflightBytes)
    private cwnd: number // messages in flight allowed now (<= window)
    private zeroFirst = false // nothing after 00 until 00 is ACKed (v1 peers)
    // When the message the last ack() matched was sent, or -1 when it was
    // sent more than once on its socket (an ACK then times no one send).
    ackedSentAt = -1
    peerMax = -1 // the peer's line limit from its hello (limits.ts; the Link's learnMax), -1: not announced

    constructor(private limits: SenderLimits) {
        this.window = limits.window
        this.cwnd = limits.window
        this.maxBytes = limits.maxInflightBytes
    }

    // The rules toward the peer now up: its window and un-ACKed bytes (at
    // most `limits.window` and `limits.maxInflightBytes`), and `zeroFirst`:
    // nothing after 00 until 00 is ACKed.
    towardPeer(window: number, bytes: number, zeroFirst: boolean): void {
        this.window = Math.min(window, this.limits.window)
        this.cwnd = Math.min(this.cwnd, this.window)
        this.maxBytes = Math.min(bytes, this.limits.maxInflightBytes)
        this.zeroFirst = zeroFirst
    }

    // Validates and queues a line; returns its ticket. Throws LinkError.
    // `id`: the wire id chosen by the writer (1..255, checked by relay.ts),
    // -1: the next one.
    enqueue(line: string, qos: boolean, wait: boolean, id: number): number {
        const payload = checkLine(line, this.limits.maxLineBytes)
        if (this.peerMax >= 0 && payload.length > this.peerMax)
            throw new LinkError("ETOOLONG", "line is " + payload.length + " bytes, more than the peer's limit (" + this.peerMax + ", from its hello)")
        if (this.queue.size() >= this.limits.maxQueuedLines || this.queuedBytes + payload.length > this.limits.maxQueuedBytes)
            throw new LinkError(
                "EQUEUEFULL",
                "write queue full (" + this.queue.size() + " lines, " + this.queuedBytes + " bytes waiting for the link)"
            )
        if (this.nextTicket >= SEQ_LIMIT) this.nextTicket = 1 // tickets need only differ among pending writes
        const o: Outgoing = { ticket: this.nextTicket++, qos: qos, wait: qos && wait, payload: payload, seq: -1, id: -1, sentAt: -1, txOrder: -1, firstTx: -1, gone: false, key: -1, want: id }
        this.queue.push(o)
        this.queuedBytes += payload.length
        if (!o.wait) this.queuedNoWait++
        return o.ticket
    }

    // Removes queued writes longer than `max`; returns their tickets.
    failLonger(max: number): number[] {
        const failed: number[] = []
        const self = this
        this.queue.retain(function (o: Outgoing) {
            if (o.payload.length <= max) return true
            failed.push(o.ticket)
            self.queuedBytes -= o.payload.length
            if (!o.wait) self.queuedNoWait--
            return false
        })
        return failed
    }

    // The receiver refused message `id` as too long: it is done with, like
    // an ACK but without the fast-resend inference (the refusal is not sent
    // in line order). Returns its ticket (qos), 0 (no qos) or -1 (unknown id).
    refuse(id: number): number {
        const h = this.awaiting(id)
        if (!h) return -1
        this.inflight.retain(function (o: Outgoing) {
            return o !== h
        })
        return this.complete(h)
    }

    // Moves queued writes into the window as far as the rules allow.
    admit(): void {
        this.probeIfStuck()
        while (this.queue.size() > 0) {
            const o = this.queue.peek() as Outgoing
            if (!this.windowHasRoom(o)) return
            if (o.wait && this.inflightQos > 0) break
            this.queue.shift()
            this.take(o)
        }
        if (this.queuedNoWait === 0 || this.queue.size() === 0) return
        // The head is a blocked wait write: later non-wait writes may go past it.
        let stop = false
        const self = this
        this.queue.retain(function (o: Outgoing) {
            // A chosen id never passes a blocked write: ids only move forward.
            if (stop || o.wait || o.want > 0 || !self.windowHasRoom(o)) {
                if (!o.wait) stop = true // keep non-wait writes in order too
                return true
            }
            self.take(o)
            return false
        })
    }

    // The next message line to put on the wire, or undefined. `written`
    // receives the tickets of non-qos writes, complete once on the wire.
    nextLine(now: number, written: number[]): Buffer | undefined {
        const i = this.nextToSend()
        if (i < 0) return undefined
        const o = this.inflight.at(i)
        o.sentAt = now
        o.txOrder = this.txCount++
        if (o.firstTx < 0) o.firstTx = o.txOrder
        if (!o.qos && o.ticket > 0) written.push(o.ticket)
        return encode(o)
    }

    // Resends qos messages un-ACKed for `timeout`, and with the first of
    // them every later qos message on the wire, so that resends go in order
    // (a receiver that dropped one drops those after it until it comes
    // again: link.ts, behindGap); forgets non-qos ones (fault 5). Returns
    // the ids marked for resending.
    expire(now: number): number[] {
        const resend: number[] = []
        let back = false
        for (let i = 0; i < this.inflight.size(); i++) {
            const o = this.inflight.at(i)
            if (o.sentAt < 0 || o.gone) continue
            const due = now >= o.sentAt + this.limits.timeout
            if (o.qos && (due || back)) {
                o.sentAt = -1
                resend.push(o.id)
                back = true
            } else if (due) this.forget(o)
        }
        return resend
    }

    // Earliest time expire() has work, or -1.
    nextExpiry(): number {
        let t = -1
        for (let i = 0; i < this.inflight.size(); i++) {
            const o = this.inflight.at(i)
            if (o.sentAt < 0 || o.gone) continue
            const due = o.sentAt + this.limits.timeout
            if (t < 0 || due < t) t = due
        }
        return t
    }

    // A line nextLine() would send now.
    hasUnsent(): boolean {
        return this.nextToSend() >= 0
    }

    // An ACK arrived: returns the ticket of the qos write it completes, 0 for
    // a non-qos one, or -1 when no un-ACKed message has that id (a duplicate
    // ACK, or one for a forgotten non-qos message). `resent` receives the ids
    // of earlier messages the receiver must have dropped (fast resend).
    ack(id: number, resent: number[]): number {
        const hit = this.awaiting(id)
        if (!hit) return -1
        this.ackedSentAt = hit.txOrder === hit.firstTx ? hit.sentAt : -1
        const self = this
        const before = resent.length
        this.inflight.retain(function (o: Outgoing) {
            if (o === hit) return false
            // The ACK may answer the hit's first transmission on this socket,
            // not a resend: only lines sent before that one were dropped.
            if (!o.gone && (o.sentAt < 0 || o.txOrder > hit.firstTx)) return true
            if (!o.gone) {
                // Sent before the ACKed one, and not ACKed: the receiver dropped it.
                if (o.qos) {
                    o.sentAt = -1
                    resent.push(o.id)
                    return true
                }
                self.forget(o)
            }
            // The receiver got past an earlier gone id.
            if (o.seq > hit.seq) return true
            if (self.probe === o) self.probe = undefined
            return false
        })
        if (resent.length > before) this.cwnd = Math.max(Math.floor(this.cwnd / 2), 1)
        else if (this.cwnd < this.window) this.cwnd++
        return this.complete(hit)
    }

    // The socket closed: non-qos messages sent on it are gone, qos ones go
    // again, and those not sent yet go on the next socket (their writes
    // complete once on the wire).
    socketLost(): void {
        this.txCount = 0
        for (let i = 0; i < this.inflight.size(); i++) {
            const o = this.inflight.at(i)
            o.firstTx = -1
            if (o.gone) continue
            if (o.qos) o.sentAt = -1
            else if (o.sentAt >= 0) this.forget(o)
        }
    }

    // The link is closed for good: every write not yet complete fails (qos,
    // and non-qos never sent). With a delivery store their records stay: the
    // next start sends them.
    failAll(): number[] {
        const tickets: number[] = []
        for (let i = 0; i < this.inflight.size(); i++) {
            const o = this.inflight.at(i)
            if (o.qos || (!o.gone && o.sentAt < 0)) tickets.push(o.ticket)
        }
        while (this.queue.size() > 0) tickets.push((this.queue.shift() as Outgoing).ticket)
        this.inflight = new Fifo<Outgoing>()
        this.live = 0
        this.probe = undefined
        this.inflightBytes = 0
        this.inflightQos = 0
        this.queuedBytes = 0
        this.queuedNoWait = 0
        return tickets
    }

    // The inflight index of the next line to send, or -1. More than `window`
    // lines, or more than the bytes in force, are live only after
    // towardPeer() narrowed them: then no more than
    // that go on the wire (a longer line alone).
    private nextToSend(): number {
        let first = -1
        let onWire = 0
        let wireBytes = 0
        for (let i = 0; i < this.inflight.size(); i++) {
            const o = this.inflight.at(i)
            if (o.gone) continue
            if (o.sentAt >= 0) {
                onWire++
                wireBytes += o.payload.length
            } else if (first < 0) {
                first = i
                if (this.live <= this.window && this.inflightBytes <= this.maxBytes) return first
            }
        }
        if (first < 0 || onWire >= this.window) return -1
        return onWire === 0 || wireBytes + this.inflight.at(first).payload.length <= this.maxBytes ? first : -1
    }

    private windowHasRoom(o: Outgoing): boolean {
        const oldest = this.inflight.peek()
        if (!oldest) return true
        if (this.nextSeq - oldest.seq >= this.window) return false
        if (this.live >= this.cwnd) return false
        if (this.zeroFirst && oldest.seq === 0 && !oldest.gone) return false
        // A line longer than the bytes in force goes once nothing else is live.
        return this.live === 0 || this.inflightBytes + o.payload.length <= this.maxBytes
    }

    // take() and complete() are not private: the delivery state's records
    // (records.ts) follow them.
    take(o: Outgoing): void {
        // Chosen ids: skip forward to the first sequence number with that wire id.
        if (o.want > 0) this.nextSeq = this.nextSeq === 0 ? o.want : this.nextSeq + ((o.want - wireId(this.nextSeq) + 255) % 255)
        if (this.nextSeq >= SEQ_LIMIT) {
            this.nextSeq -= SEQ_SHIFT
            for (let i = 0; i < this.inflight.size(); i++) this.inflight.at(i).seq -= SEQ_SHIFT
        }
        this.queuedBytes -= o.payload.length
        if (!o.wait) this.queuedNoWait--
        o.seq = this.nextSeq++
        o.id = wireId(o.seq)
        o.sentAt = -1
        this.inflight.push(o)
        this.live++
        this.inflightBytes += o.payload.length
        if (o.qos) this.inflightQos++
    }

    // The message on the wire with wire id `id` and no ACK yet, or undefined.
    private awaiting(id: number): Outgoing | undefined {
        for (let i = 0; i < this.inflight.size(); i++) {
            const o = this.inflight.at(i)
            if (o.id === id && o.sentAt >= 0 && !o.gone) return o
        }
        return undefined
    }

    // `o` (out of the window already) is ACKed or refused: returns its
    // ticket (qos) or 0.
    complete(o: Outgoing): number {
        this.inflightBytes -= o.payload.length
        this.live--
        if (o.qos) this.inflightQos--
        return o.qos ? o.ticket : 0
    }

    // A non-qos message is done with, but its id may not have arrived.
    private forget(o: Outgoing): void {
        this.inflightBytes -= o.payload.length
        this.live--
        o.gone = true
        o.sentAt = -1
        const p = this.probe
        if (p && p.seq > o.seq) {
            o.payload = NOTHING
            return
        }
        if (p) p.payload = NOTHING
        this.probe = o
    }

    private probeIfStuck(): void {
        const p = this.probe
        if (!p || this.live > 0 || this.queue.size() === 0) return
        const oldest = this.inflight.peek() as Outgoing
        if (this.nextSeq - oldest.seq < this.window) return
        this.probe = undefined
        p.gone = false
        p.ticket = 0 // its write completed when it was first sent
        this.live++
        this.inflightBytes += p.payload.length
    }
}

// write()'s checks (docs/protocol.md: a payload is never empty, has no inner
// "\n", and fits the maximum). One trailing "\n" is allowed and removed.
function checkLine(line: string, maxLineBytes: number): Buffer {
    let text = line
    if (typeof text !== "string") throw new LinkError("ETYPE", "write() takes a string, got " + typeof text)
    if (text.length > 0 && text.charCodeAt(text.length - 1) === 10) text = text.slice(0, text.length - 1)
    if (text.length === 0) throw new LinkError("EEMPTY", "cannot write an empty line (it would look like an ACK)")
    if (text.indexOf("\n") >= 0) throw new LinkError("ENEWLINE", "a line cannot contain \\n except at its end")
    const bytes = Buffer.from(text)
    if (bytes.length > maxLineBytes)
        throw new LinkError("ETOOLONG", "line is " + bytes.length + " bytes, more than maxLineBytes (" + maxLineBytes + ")")
    return bytes
}

const NOTHING = Buffer.alloc(0)

function encode(o: Outgoing): Buffer {
    const h = hexByte(o.id)
    const out = Buffer.alloc(o.payload.length + 3)
    out[0] = h.charCodeAt(0)
    out[1] = h.charCodeAt(1)
    out.set(o.payload, 2)
    out[out.length - 1] = 10
    return out
}
