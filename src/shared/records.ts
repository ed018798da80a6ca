// The delivery state's records (store.ts), kept as the Link and the Sender
// go when the Node shell gave them a store with useStore(): it wraps the
// methods of that one Link and its Sender where a record changes, so the
// core holds no call to them and a board, which never records, compiles
// none of it (DeviceScript compiles only what is reachable from the entry;
// docs/benchmarks.md, "Board bytecode"). Each record is made before the
// driver takes the bytes the call left to send, as the shell's commit needs.
import { SeenIds } from "./dedup.js"
import { wireId } from "./ids.js"
import { Kept, type Link } from "./link.js"
import { Fifo } from "./queue.js"
import type { Outgoing, Sender } from "./sender.js"
import type { LinkRecord, LinkStore, OwedLine, Recorded, Recorder, SavedLink } from "./store.js"

// Keeps the delivery state of `link` in `store` from now on (before open()).
// `saved`: what an earlier life of this process left for this id; its
// epoch must be the Link's. The peer's resends of lines taken then are
// duplicates; lines owed then are sent again with their ids; lines ACKed
// then but not taken are read first.
export function useStore(link: Link<any>, store: LinkStore, saved: SavedLink | undefined): void {
    const r = new StoreRecorder(link, store)
    const sender = link.sender
    if (saved !== undefined) {
        const s = saved.link
        if (s.peerEpoch !== "") link.peerEpoch = s.peerEpoch
        load(r.durable, s.seen, s.newest)
        load(link.seen, s.seen, s.newest)
        link.stats.received = s.received
        link.stats.duplicates = s.duplicates
        link.stats.resent = s.resent
        for (let i = 0; i < saved.kept.length; i++) {
            const x = saved.kept[i]
            const k = new Kept(x.payload.toString(), x.payload.length, x.id, 0, -1)
            k.acked = true
            k.key = x.key
            if (x.key >= r.nextKept) r.nextKept = x.key + 1
            link.inbox.push(k)
            link.inboxBytes += k.bytes
        }
        restoreOwed(sender, r, saved)
    }
    // Nothing is saved until something happens worth keeping (the link
    // comes up, a line is taken or sent): an id whose link never comes up
    // (a stranger's) leaves nothing behind.
    r.savedSeq = sender.nextSeq
    r.recorded = saved !== undefined
    ;(link as Recorded).rec = r
    follow(link, r)
}

// Where a record changes, on this Link and its Sender only.
function follow(link: Link<any>, r: StoreRecorder): void {
    const read = method(link.read, link)
    link.read = function (now: number): string | undefined {
        const k = link.inbox.peek()
        const owed = k !== undefined && !k.acked
        const line = read(now)
        // A line whose ACK is still owed is now taken; one ACKed before it
        // was read has its kept record dropped.
        if (k !== undefined && owed) r.took(k.id)
        else if (k !== undefined && k.key >= 0) r.unkeep(k.key)
        return line
    }
    const ack = method(link.ack, link)
    link.ack = function (k: Kept): void {
        const was = k.acked
        ack(k)
        // Its ACK leaves before the application took it: kept, payload and all.
        if (!was && !k.taken) k.key = r.keep(k.id, k.payload)
    }
    const forget = method(link.forget, link)
    link.forget = function (c: any): void {
        forget(c)
        r.forget()
    }
    const sender = link.sender
    const enqueue = method(sender.enqueue, sender)
    sender.enqueue = function (line: string, qos: boolean, wait: boolean, id: number): number {
        const t = enqueue(line, qos, wait, id)
        // A qos line is owed from its write on.
        if (qos) r.owe(sender.queue.at(sender.queue.size() - 1))
        return t
    }
    const take = method(sender.take, sender)
    sender.take = function (o: Outgoing): void {
        const first = sender.inflight.peek()
        const seq = first === undefined ? 0 : first.seq
        take(o)
        // Recorded again with its sequence number, and every line on the
        // wire again when the sequence was renumbered (ids.ts).
        if (first !== undefined && first.seq !== seq) for (let i = 0; i < sender.inflight.size(); i++) owe(r, sender.inflight.at(i))
        else owe(r, o)
    }
    const admit = method(sender.admit, sender)
    sender.admit = function (): void {
        admit()
        // Lines are about to be sent: a new sequence number is recorded first.
        r.sending()
    }
    const complete = method(sender.complete, sender)
    sender.complete = function (o: Outgoing): number {
        const t = complete(o)
        // ACKed or refused: its record goes.
        if (o.key >= 0) r.paid(o.key)
        return t
    }
    const failLonger = method(sender.failLonger, sender)
    sender.failLonger = function (max: number): number[] {
        const queued: Outgoing[] = []
        for (let i = 0; i < sender.queue.size(); i++) queued.push(sender.queue.at(i))
        const failed = failLonger(max)
        for (let i = 0; i < queued.length; i++) {
            const o = queued[i]
            if (o.key >= 0 && failed.indexOf(o.ticket) >= 0) r.paid(o.key)
        }
        return failed
    }
}

// `f`, a method of `self`, as a plain function (Node alone runs this file:
// DeviceScript's types have no bind).
function method<F>(f: F, self: object): F {
    return (f as any).bind(self)
}

function owe(r: StoreRecorder, o: Outgoing): void {
    if (o.key >= 0) r.owe(o)
}

// Lines read since the last commit (in read order) whose take could not be
// made durable (the commit failed: a full disk): they go back to the front
// of the inbox, unread, so the application gets them once a commit holds
// and a process killed meanwhile gets them from the peer, not twice. A line
// whose ACK is still owed leaves the recorded seen set; one whose ACK left
// (released at once on disk, or after ackDelay) is recorded as kept, as if
// it had not been read.
export function untake(link: Link<any>, lines: Kept[]): void {
    if (lines.length === 0) return
    const r = (link as Recorded).rec as StoreRecorder | undefined
    const back = new Fifo<Kept>()
    for (let i = 0; i < lines.length; i++) {
        const k = lines[i]
        k.taken = false
        if (!k.acked) {
            link.taken.retain((x) => x !== k)
            link.unacked++
            if (r !== undefined) r.untook(k.id)
        } else if (r !== undefined) k.key = r.keep(k.id, k.payload)
        back.push(k)
        link.inboxBytes += k.bytes
    }
    for (let k = link.inbox.shift(); k !== undefined; k = link.inbox.shift()) back.push(k)
    link.inbox = back
}

function load(set: SeenIds, bits: number[], newest: number): void {
    set.bits = bits.slice(0)
    set.newest = newest
}

// Lines an earlier life owed (in key order): sent again with their ids.
function restoreOwed(sender: Sender, r: StoreRecorder, saved: SavedLink): void {
    if (saved.link.nextSeq > sender.nextSeq) sender.nextSeq = saved.link.nextSeq
    const sent: Outgoing[] = []
    for (let i = 0; i < saved.owed.length; i++) {
        const x = saved.owed[i]
        const o: Outgoing = { ticket: 0, qos: true, wait: x.wait, payload: x.payload, seq: x.seq, id: x.seq < 0 ? -1 : wireId(x.seq), sentAt: -1, txOrder: -1, firstTx: -1, gone: false, key: x.key, want: -1 }
        if (x.key >= r.nextKey) r.nextKey = x.key + 1
        if (x.seq < 0) {
            sender.queue.push(o)
            sender.queuedBytes += o.payload.length
            if (!o.wait) sender.queuedNoWait++
        } else sent.push(o)
    }
    sent.sort(function (a: Outgoing, b: Outgoing) {
        return a.seq - b.seq
    })
    for (let i = 0; i < sent.length; i++) {
        const o = sent[i]
        sender.inflight.push(o)
        sender.live++
        sender.inflightBytes += o.payload.length
        sender.inflightQos++
    }
}

class StoreRecorder implements Recorder {
    // The seen set as the store has it: only ids the application took, or
    // whose ACK left before it did; an id that merely arrived is not in it,
    // so after a restart its resend is delivered.
    durable = new SeenIds()
    nextKept = 0
    nextKey = 0
    savedSeq = -1
    recorded = false // the store holds this link's record

    constructor(private link: Link<any>, private store: LinkStore) {}

    owe(o: OwedLine): void {
        const fresh = o.key < 0
        if (fresh) o.key = this.nextKey++
        this.store.putOwed({ key: o.key, seq: o.seq, wait: o.wait, payload: o.payload })
        // A line owed belongs to this link's record: without it, it would
        // not be found at the next start.
        if (fresh && !this.recorded) this.save()
    }

    paid(key: number): void {
        this.store.dropOwed(key)
    }

    keep(id: number, payload: string): number {
        const key = this.nextKept++
        this.store.putKept({ key: key, id: id, payload: Buffer.from(payload) })
        this.took(id)
        return key
    }

    unkeep(key: number): void {
        this.store.dropKept(key)
    }

    took(id: number): void {
        this.durable.mark(id)
        this.save()
    }

    // A take undone (untake): the id is no longer recorded as taken.
    untook(id: number): void {
        this.durable.bits[id >> 3] &= ~(1 << (id & 7))
        this.save()
    }

    forget(): void {
        this.durable.clear()
        this.save()
    }

    sending(): void {
        if (this.link.sender.nextSeq !== this.savedSeq) this.save()
    }

    private save(): void {
        const l = this.link
        this.savedSeq = l.sender.nextSeq
        this.recorded = true
        const r: LinkRecord = {
            epoch: l.epoch,
            peerEpoch: l.peerEpoch === undefined ? "" : l.peerEpoch,
            seen: this.durable.bits.slice(0),
            newest: this.durable.newest,
            nextSeq: this.savedSeq,
            received: l.stats.received,
            duplicates: l.stats.duplicates,
            resent: l.stats.resent,
        }
        this.store.saveLink(r)
    }
}
