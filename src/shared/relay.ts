// What only a relay (the MQTT gateway, through the Node driver) does with a
// Link: write with the wire id it chose, and hold received lines until it
// has passed them on. Free functions over the Link, so that a board, which
// never relays, compiles none of it (DeviceScript compiles every method of
// a class it uses, but only the functions reachable from the entry).
import { LinkError } from "./errors.js"
import type { Kept, Link } from "./link.js"
import type { Recorded } from "./store.js"

// As Link.write, with the wire id chosen by the caller (1..255; -1: the
// next one; sender.ts, "chosen ids").
export function writeAs(link: Link<any>, line: string, qos: boolean, wait: boolean, id: number): number {
    if (id !== -1 && !(id >= 1 && id <= 255 && id === Math.floor(id))) throw new LinkError("ETYPE", "a chosen message id must be 1..255, not " + id)
    return link.write(line, qos, wait, id)
}

// A line taken with hold(): its payload, and what settle() ACKs.
export class HeldLine {
    payload: string
    kept: Kept

    constructor(payload: string, kept: Kept) {
        this.payload = payload
        this.kept = kept
    }
}

// The next received line for a relay: its ACK waits for settle(line),
// however long, since the relay may ACK only once the line is safe further
// on. Unsettled lines keep the peer's window full, so the peer stops
// sending: that is the back-pressure.
export function hold(link: Link<any>, now: number): HeldLine | undefined {
    link.lastRead = now
    const k = link.inbox.shift()
    if (k === undefined) return undefined
    link.inboxBytes -= k.bytes
    if (!k.acked) {
        link.unacked--
        link.holding.push(k)
    }
    return new HeldLine(k.payload, k)
}

// The relay has passed on a held line: ACK it now (or on the next socket
// of the same peer life; never toward a peer that restarted since).
// With a store, settling is the relay's take: recorded as seen (so a
// resend is a duplicate), and a kept record of the line (ACKed before
// it was held) goes, else a restart would give it again.
export function settle(link: Link<any>, line: HeldLine): void {
    const k = line.kept
    const r = (link as Recorded).rec
    if (k.acked) {
        if (k.key >= 0 && r !== undefined) r.unkeep(k.key)
        k.key = -1
        return
    }
    link.holding.retain(function (x: Kept) {
        return x !== k
    })
    k.taken = true
    if (r !== undefined) r.took(k.id)
    link.ack(k)
}

// Lines held and not settled.
export function holdingCount(link: Link<any>): number {
    return link.holding.size()
}
