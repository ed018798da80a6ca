// Link settings, their defaults for each kind of host, and their validation.
// Every setting comes from outside (flags, board settings), so a bad one is
// refused with a message that names it and says what would be accepted.

import { LinkError } from "./errors.js"
import { MAX_ENCRYPTED_LINE } from "./limits.js"
import { isWhole, wholeRange } from "./whole.js"

export type OnFull = "pause" | "drop"

// The send window toward a v1 peer (one that has not announced the devs-iot
// extension): at most this many messages un-ACKed, whatever `window` says.
// The original client ACKs a line on receipt and keeps up to 20 unread lines
// in its receive queue; one more is lost (though ACKed) and the client
// reconnects (docs/protocol.md, "The send window toward a v1 peer"). Its ACKs say nothing of its reads, so
// no sender can know how full that queue is: 20 in flight is the most that
// can never overflow it while its application keeps up with the link.
export const V1_WINDOW = 20

// The un-ACKed payload bytes toward the original server (a v1 peer seen from
// a client), whatever `maxInflightBytes` says. It reads a socket at most 4096
// bytes at a time and takes each read on its own: a read that ends inside a
// UTF-8 character kills its reader (fault 3), and one that starts with the
// "\n" ending a line strips it, which joins that line to the next. It ACKs
// what it has read, so with this many payload bytes un-ACKed (and 3 more
// per line for its id and "\n", and room left for this end's ACKs and
// keepalives) all it has not read fits one read, and a read ends only where
// the bytes that reached it end. A longer line still goes, alone.
// (docs/protocol.md, "The send window toward a v1 peer")
export const V1_SERVER_INFLIGHT = 3072

// The settings every end takes, the board's among them.
export interface CommonOptions {
    timeout?: number // ms; the same on the server and every client
    maxLineBytes?: number // longest payload, in UTF-8 bytes
    window?: number // un-ACKed ids per link
    maxInflightBytes?: number // un-ACKed bytes per link (toward the original server at most 3,072: V1_SERVER_INFLIGHT)
    maxQueuedLines?: number // writes waiting for the link (e.g. in an outage)
    maxQueuedBytes?: number // bytes of those writes
    maxReceivedLines?: number // received lines the application has not read
    maxReceivedBytes?: number // bytes of those lines
    maxWriteBytes?: number // bytes handed to the socket per pollTransmit
    maxBacklogBytes?: number // board: unread bytes held while the queue is full, before dropping
    ackDelay?: number // ms a received line may wait unread before it is ACKed anyway (0: ACK on receipt, as v1)
    encrypt?: boolean // this end encrypts what it sends: maxLineBytes then fits AES-CCM (limits.ts)
}

// Node's settings add the ones a board has fixed (boardDefaults): a board
// never warms up a v1 client (a server's rule), its runtime reads the socket
// whatever the app does (so it drops), and its LED shows keepalives.
export interface LinkOptions extends CommonOptions {
    warmup?: number // ms the server waits before messaging a v1 client
    onFull?: OnFull // full receive queue: stop reading (Node) or drop un-ACKed (board)
    keepaliveEvents?: boolean // report each keepalive received (heartbeat LED)
}

export interface LinkConfig {
    timeout: number
    maxLineBytes: number
    window: number
    maxInflightBytes: number
    maxQueuedLines: number
    maxQueuedBytes: number
    maxReceivedLines: number
    maxReceivedBytes: number
    maxWriteBytes: number
    warmup: number
    onFull: OnFull
    maxBacklogBytes: number
    keepaliveEvents: boolean
    ackDelay: number
}

// Node has memory to spare and can stop reading a socket; the board has a
// 64 KB heap and a runtime that reads the socket whatever the app does.
export function nodeDefaults(): LinkConfig {
    return {
        timeout: 2000,
        maxLineBytes: 65536,
        window: 64,
        maxInflightBytes: 1048576,
        maxQueuedLines: 4096,
        maxQueuedBytes: 4194304,
        maxReceivedLines: 1024,
        maxReceivedBytes: 1048576,
        maxWriteBytes: 65536,
        warmup: 200,
        onFull: "pause",
        maxBacklogBytes: 65536,
        keepaliveEvents: false,
        ackDelay: 100,
    }
}

// `heap`: the GC heap of the board's chip (limits.ts heapOfArch). A held
// line costs the board about 250 bytes of heap beyond its text (measured:
// docs/benchmarks.md, "Board heap"), so the receive queue and backlog are
// kept short; below 64 KB (an ESP32-S2: 40 KB) every queue holds half as
// much, so a burst the app does not read still leaves the heap room
// (docs/board.md, "Boards and heap").
export function boardDefaults(heap?: number): LinkConfig {
    const scale = heap !== undefined && heap < 65536 ? 1 : 2 // every queue half as long below 64 KB
    return {
        timeout: 2000,
        maxLineBytes: 2048,
        window: 8 * scale,
        maxInflightBytes: 2048 * scale,
        maxQueuedLines: 16 * scale,
        maxQueuedBytes: 2048 * scale,
        maxReceivedLines: 8 * scale,
        maxReceivedBytes: 2048 * scale,
        maxWriteBytes: 1024,
        warmup: 200,
        onFull: "drop",
        maxBacklogBytes: 1024 * scale,
        keepaliveEvents: true,
        ackDelay: 100,
    }
}

// Fills in defaults and checks every value; throws LinkError("ECONFIG").
// Node's: resolveCommon(), then the settings a board has fixed.
export function resolveConfig(opts: LinkOptions | undefined, base: LinkConfig): LinkConfig {
    const o: LinkOptions = opts || {}
    const c = resolveCommon(o, base)
    c.warmup = intIn("warmup", o.warmup, base.warmup, 0, 60000)
    if (o.onFull !== undefined) {
        if (o.onFull !== "pause" && o.onFull !== "drop")
            throw new LinkError("ECONFIG", 'onFull must be "pause" or "drop", got ' + show(o.onFull))
        c.onFull = o.onFull
    }
    if (o.keepaliveEvents !== undefined) c.keepaliveEvents = !!o.keepaliveEvents
    return c
}

// The settings every end takes (a board's Client: only these); the others
// as `base` has them.
export function resolveCommon(opts: CommonOptions | undefined, base: LinkConfig): LinkConfig {
    const o: CommonOptions = opts || {}
    const c: LinkConfig = {
        timeout: intIn("timeout", o.timeout, base.timeout, TIMEOUT.min, TIMEOUT.max),
        maxLineBytes: intIn("maxLineBytes", o.maxLineBytes, base.maxLineBytes, 16, 16777216),
        window: intIn("window", o.window, base.window, 1, 120),
        maxInflightBytes: intIn("maxInflightBytes", o.maxInflightBytes, base.maxInflightBytes, 16, 1073741824),
        maxQueuedLines: intIn("maxQueuedLines", o.maxQueuedLines, base.maxQueuedLines, 1, 16777216),
        maxQueuedBytes: intIn("maxQueuedBytes", o.maxQueuedBytes, base.maxQueuedBytes, 16, 1073741824),
        maxReceivedLines: intIn("maxReceivedLines", o.maxReceivedLines, base.maxReceivedLines, 1, 16777216),
        maxReceivedBytes: intIn("maxReceivedBytes", o.maxReceivedBytes, base.maxReceivedBytes, 16, 1073741824),
        maxWriteBytes: intIn("maxWriteBytes", o.maxWriteBytes, base.maxWriteBytes, 64, 16777216),
        warmup: base.warmup,
        onFull: base.onFull,
        maxBacklogBytes: intIn("maxBacklogBytes", o.maxBacklogBytes, base.maxBacklogBytes, 0, 1073741824),
        keepaliveEvents: base.keepaliveEvents,
        ackDelay: intIn("ackDelay", o.ackDelay, base.ackDelay, 0, 900000),
    }
    if (o.encrypt === true && c.maxLineBytes > MAX_ENCRYPTED_LINE) {
        if (o.maxLineBytes !== undefined)
            throw new LinkError(
                "ECONFIG",
                "maxLineBytes (" + c.maxLineBytes + ") must be at most " + MAX_ENCRYPTED_LINE + " with encryption: AES-CCM seals at most 65535 bytes, the 2-character id and the payload"
            )
        c.maxLineBytes = MAX_ENCRYPTED_LINE
    }
    if (c.maxQueuedBytes < c.maxLineBytes)
        throw new LinkError("ECONFIG", "maxQueuedBytes (" + c.maxQueuedBytes + ") must be at least maxLineBytes (" + c.maxLineBytes + ")")
    // Later than timeout/4, a peer would resend lines that are only unread.
    const quarter = Math.floor(c.timeout / 4)
    if (o.ackDelay === undefined && c.ackDelay > quarter) c.ackDelay = quarter
    if (c.ackDelay > quarter) throw new LinkError("ECONFIG", "ackDelay (" + c.ackDelay + ") must be at most timeout/4 (" + quarter + ")")
    if (c.maxReceivedBytes < c.maxLineBytes)
        throw new LinkError("ECONFIG", "maxReceivedBytes (" + c.maxReceivedBytes + ") must be at least maxLineBytes (" + c.maxLineBytes + ")")
    return c
}

export function intIn(name: string, v: unknown, dflt: number, min: number, max: number): number {
    if (v === undefined) return dflt
    if (!isWhole(v, min, max)) throw new LinkError("ECONFIG", name + " " + wholeRange(min, max) + ", got " + show(v))
    return v as number
}

// "" + value differs between DeviceScript and Node for objects: format by type.
export function show(v: unknown): string {
    if (typeof v === "string") return '"' + v + '"'
    if (typeof v === "number" || typeof v === "boolean") return "" + v
    if (v === null) return "null"
    if (v === undefined) return "undefined"
    return typeof v
}

// A whole-number setting's range and default, defined once; its name and doc
// sit with the code that reads it (a board setting's row, a CLI flag).
export interface Range {
    min: number
    max: number
    dflt: number
}

// A server setting: its option name, its command-line flag (also read from
// DEVS_IOT_<FLAG>), its range, default and what it bounds. The server and
// the CLI both read such rows, so each setting is defined once.
export interface Setting extends Range {
    name: string
    flag: string
    arg: string // MS, N, ...
    dfltText?: string // the default when it is not a number ("2 x timeout")
    doc: string
}

// The one setting every end shares: the server, the Node client, the board.
export const TIMEOUT: Setting = { name: "timeout", flag: "timeout", arg: "MS", min: 100, max: 3600000, dflt: 2000, doc: "outage detection time; the same at both ends" }
// The server's port as a client names it (the board, the Node client).
export const PORT: Range = { min: 1, max: 65535, dflt: 8123 }
// Demo apps on a board: ms between messages.
export const INTERVAL: Range = { min: 10, max: 3600000, dflt: 5000 }
