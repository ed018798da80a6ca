// What the Node shell and the tests read of a Link (its state, back-pressure,
// what it holds), as free functions over it: a board reads none of it, and
// DeviceScript compiles every method of a class it uses but only the
// functions reachable from the entry.
import type { Link } from "./link.js"

export function isSealed(link: Link<any>): boolean {
    return link.conn !== undefined && link.conn.session !== undefined
}

// The peer's announced line limit, or -1.
export function peerLimit(link: Link<any>): number {
    return link.sender.peerMax
}

// Lines received and not yet read.
export function readable(link: Link<any>): number {
    return link.inbox.size()
}

export function isClosed(link: Link<any>): boolean {
    return link.closed
}

// Writes not yet complete: queued, or sent and not ACKed.
export function queuedWrites(link: Link<any>): number {
    return link.sender.queue.size() + link.sender.live
}

export function hasSocket(link: Link<any>): boolean {
    return link.conn !== undefined
}

// Control lines waiting for the driver (ACKs above all): with the socket's
// own buffer, what a peer that does not read makes us hold.
export function unsentBytes(link: Link<any>): number {
    const c = link.conn
    return c === undefined ? 0 : c.out.length + c.pre.length
}

// False when the backlog is full in pause mode: the driver stops reading.
export function wantsRead(link: Link<any>): boolean {
    const c = link.conn
    return c !== undefined && !link.paused(c)
}
