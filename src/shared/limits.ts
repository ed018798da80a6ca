// Line-size rules that hold the same at both ends and in every layer
// (docs/protocol.md, "Line limits": max= and !toolong).
//
// - cipher: AES-CCM with a 13-byte nonce has a 2-byte length field, so it
//   seals at most 65,535 bytes: the 2-digit id and the payload. With
//   encryption on, maxLineBytes is at most MAX_ENCRYPTED_LINE.
// - announce: a devs-iot end puts its maxLineBytes in its hello (max=), so
//   the peer's write() refuses a longer line up front (ETOOLONG). A v1 peer
//   never sees it.
// - refuse: a message line that arrives over the limit anyway is never left
//   un-ACKed (its sender would resend it forever): a peer that announced
//   max= gets "!toolong id=<hh> max=<n>" and fails that write with ETOOLONG;
//   a peer that did not (v1) gets the ACK, and the line is logged as dropped.

import { helloField } from "./hello.js"
import { hexByte, hexId } from "./hex.js"
import { isWhole } from "./whole.js"

export const CCM_MAX_PLAIN = 65535
const ID_CHARS = 2
export const MAX_ENCRYPTED_LINE = CCM_MAX_PLAIN - ID_CHARS
// Bounds of an announced limit; outside them the announcement is ignored.
const MIN_LINE_LIMIT = 16
const MAX_LINE_LIMIT = 16777216

// The value of a " max=<n>" field in a hello, or -1 when absent or not a
// whole number in range.
export function parseMax(text: string): number {
    const s = helloField(text, "max")
    if (s.length === 0 || s.length > 9 || "0123456789".indexOf(s.charAt(0)) < 0) return -1
    const v = +s
    return isWhole(v, MIN_LINE_LIMIT, MAX_LINE_LIMIT) ? v : -1
}

export function tooLongLine(id: number, max: number): string {
    return "!toolong id=" + hexByte(id) + " max=" + max + "\n"
}

// A "!toolong" line: the refused id and the peer's limit, or undefined.
export function parseTooLong(text: string): { id: number; max: number } | undefined {
    if (text.indexOf("!toolong id=") !== 0 || text.length < 14) return undefined
    const id = hexId(text.charCodeAt(12), text.charCodeAt(13))
    return id < 0 ? undefined : { id: id, max: parseMax(text) }
}

// The id of a message line from its first bytes, or -1.
export function idOfHead(head: Buffer): number {
    return head.length < ID_CHARS ? -1 : hexId(head[0], head[1])
}

// The framer takes lines of at least this many bytes whatever maxLineBytes
// says: the longest handshake line (a keyed hello with a 64-character
// epoch, a nonce and a proof) must pass even at the smallest line limit.
// A longer message is still refused by its length.
export const HANDSHAKE_LINE_MAX = 256

// The framer's limit on a sealed connection: an encrypted message is hex,
// twice its bytes, plus the tag and the header.
export function sealedLimit(maxLineBytes: number): number {
    return 2 * maxLineBytes + 64
}

// The board's framing budget: received bytes it may hold not yet cut into
// lines. DeviceScript has no heap statistics, so it is derived from the GC
// heap of the board's chip (heapOfArch), less what the runtime and an idle
// client take (RUNTIME_BASE, measured in the simulator: 64 KB heap, 41 KB
// free with the client up) and what the link's other bounded buffers may
// hold; the rest, at most 16 KB and never less than one sealed line
// (sealedLimit). `short` > 0: the heap cannot hold all the buffers
// by that many bytes (the board logs it at start, naming the settings).
const RUNTIME_BASE = 24576
const FRAMING_MAX = 16384

interface HeapBudget {
    heap: number
    maxLineBytes: number
    buffers: number // the link's other bounded buffers (receive queue, backlog, send queue, in flight)
}

export function framingBudget(b: HeapBudget): { bytes: number; short: number } {
    const min = sealedLimit(b.maxLineBytes)
    const spare = b.heap - RUNTIME_BASE - b.buffers
    const bytes = Math.max(Math.min(spare, FRAMING_MAX), min)
    const short = RUNTIME_BASE + b.buffers + bytes - b.heap
    return { bytes: bytes, short: Math.max(short, 0) }
}

// The GC heap of a DeviceScript chip (archId of the board file): 40 KB on an
// ESP32-S2, 64 KB on the others and in the simulator.
export function heapOfArch(arch: string): number {
    return arch === "esp32s2" ? 40960 : 65536
}
