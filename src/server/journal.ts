// The state folder's journal (state.ts): each commit appends one frame of
// records with one write(2), which a killed process cannot take back (the
// bytes are in the kernel's page cache when write returns); with --state-sync
// an fdatasync follows. The records go into LMDB in batches (a checkpoint),
// after which the journal is emptied. At start the journal is applied again:
// every record is a whole value or a removal, so applying twice is harmless.
//
// Frame: u32 body length, u32 0xD5A7E002 (a frame mark), u32 CRC-32 of the
// body, body. Frames of the first format (mark 0xD5A7E001, no CRC) are read
// too. The CRC tells a frame whose header reached the disk and part of whose
// body did not (zeros inside a payload after a power cut) from a whole one.
// Body: records.
// Record: kind (u8), id (u16 length + UTF-8, never empty), then by kind:
//   LINK     epoch, peerEpoch (u8 length + ASCII each), seen (32 bytes),
//            newest (i32), nextSeq (f64), received, duplicates, resent (f64)
//   OWED     key (f64), seq (f64), wait (u8), payload (u32 length + bytes)
//   KEPT     key (f64), id (u8), payload (u32 length + bytes)
//   DROP_OWED, DROP_KEPT   key (f64)
//   REMOVE   (nothing: every record of the id goes)
import type { KeptLine, LinkRecord, OwedLine } from "../shared/index.js"

export const J_LINK = 0
export const J_OWED = 1
export const J_KEPT = 2
export const J_DROP_OWED = 3
export const J_DROP_KEPT = 4
export const J_REMOVE = 5

export type JRecord =
    | { kind: typeof J_LINK; id: string; link: LinkRecord }
    | { kind: typeof J_OWED; id: string; owed: OwedLine }
    | { kind: typeof J_KEPT; id: string; kept: KeptLine }
    | { kind: typeof J_DROP_OWED | typeof J_DROP_KEPT; id: string; key: number }
    | { kind: typeof J_REMOVE; id: string }

const MARK = 0xd5a7e002
const MARK_NO_CRC = 0xd5a7e001 // the first format's frames: read, never written
const HEAD = 12

// CRC-32 (IEEE 802.3, as zlib's), by a table of 256.
const CRC_TABLE = new Int32Array(256)
for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    CRC_TABLE[n] = c
}
function crc32(b: Uint8Array, from: number, to: number): number {
    let c = -1
    for (let i = from; i < to; i++) c = CRC_TABLE[(c ^ b[i]!) & 255]! ^ (c >>> 8)
    return (c ^ -1) >>> 0
}

class Out {
    buf = Buffer.allocUnsafe(4096)
    n = 0
    room(k: number): void {
        if (this.n + k <= this.buf.length) return
        const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k))
        this.buf.copy(b, 0, 0, this.n)
        this.buf = b
    }
    u8(x: number): void {
        this.room(1)
        this.buf[this.n++] = x
    }
    u16(x: number): void {
        this.room(2)
        this.n = this.buf.writeUInt16LE(x, this.n)
    }
    u32(x: number): void {
        this.room(4)
        this.n = this.buf.writeUInt32LE(x, this.n)
    }
    i32(x: number): void {
        this.room(4)
        this.n = this.buf.writeInt32LE(x, this.n)
    }
    f64(x: number): void {
        this.room(8)
        this.n = this.buf.writeDoubleLE(x, this.n)
    }
    bytes(b: Uint8Array): void {
        this.room(b.length)
        this.buf.set(b, this.n)
        this.n += b.length
    }
    // u8 length + UTF-8, written in place (no Buffer per string). At most 255 bytes.
    // Epochs are short ASCII: copied a char at a time, cheaper than a call into UTF-8.
    str8(s: string): void {
        this.room(1 + 3 * s.length)
        const b = this.buf
        if (s.length <= 32) {
            let i = 0
            for (; i < s.length; i++) {
                const c = s.charCodeAt(i)
                if (c >= 128) break
                b[this.n + 1 + i] = c
            }
            if (i === s.length) {
                b[this.n] = i
                this.n += 1 + i
                return
            }
        }
        const k = b.write(s, this.n + 1, "utf8")
        if (k > 255) throw new RangeError(`journal: a string of ${k} bytes, at most 255: ${JSON.stringify(s.slice(0, 40))}`)
        b[this.n] = k
        this.n += 1 + k
    }
}

// The frame being made: records are encoded as the core makes them (no
// object per record), and written by one commit. After a failed write the
// frame stays, and the next commit writes it with what came since.
export class FrameWriter {
    private o = new Out()
    // Where each owed line's seq sits in this frame, by id and key: a line
    // recorded when written and again when sent in the same commit (the
    // usual case) has its seq rewritten in place, not a second record.
    private owedAt = new Map<Uint8Array, Map<number, number>>()

    constructor() {
        this.reset()
    }

    reset(): void {
        this.o.n = 0
        this.o.u32(0)
        this.o.u32(MARK)
        this.o.u32(0)
        if (this.owedAt.size > 0) this.owedAt.clear()
    }

    isEmpty(): boolean {
        return this.o.n === HEAD
    }

    link(id: Uint8Array, l: LinkRecord): void {
        const o = this.head(J_LINK, id)
        o.str8(l.epoch)
        o.str8(l.peerEpoch)
        o.room(32)
        for (let i = 0; i < 32; i++) o.buf[o.n++] = l.seen[i]! & 255
        o.i32(l.newest)
        o.f64(l.nextSeq)
        o.f64(l.received)
        o.f64(l.duplicates)
        o.f64(l.resent)
    }

    owed(id: Uint8Array, r: OwedLine): void {
        let at = this.owedAt.get(id)
        const seqAt = at?.get(r.key)
        if (seqAt !== undefined) {
            // The same line (payload and wait do not change), now with its seq.
            this.o.buf.writeDoubleLE(r.seq, seqAt)
            return
        }
        const o = this.head(J_OWED, id)
        o.f64(r.key)
        if (at === undefined) this.owedAt.set(id, (at = new Map()))
        at.set(r.key, o.n)
        o.f64(r.seq)
        o.u8(r.wait ? 1 : 0)
        o.u32(r.payload.length)
        o.bytes(r.payload)
    }

    kept(id: Uint8Array, r: KeptLine): void {
        const o = this.head(J_KEPT, id)
        o.f64(r.key)
        o.u8(r.id)
        o.u32(r.payload.length)
        o.bytes(r.payload)
    }

    drop(kind: typeof J_DROP_OWED | typeof J_DROP_KEPT, id: Uint8Array, key: number): void {
        // After a drop the line may not be rewritten in place: a put that
        // came after it must follow it in the frame.
        if (kind === J_DROP_OWED) this.owedAt.get(id)?.delete(key)
        this.head(kind, id).f64(key)
    }

    remove(id: Uint8Array): void {
        this.owedAt.delete(id)
        this.head(J_REMOVE, id)
    }

    // The frame so far: bytes 0 to length() of buffer(); valid until the
    // next record or reset().
    buffer(): Buffer {
        const o = this.o
        o.buf.writeUInt32LE(o.n - HEAD, 0)
        o.buf.writeUInt32LE(crc32(o.buf, HEAD, o.n), 8)
        return o.buf
    }

    length(): number {
        return this.o.n
    }

    private head(kind: number, id: Uint8Array): Out {
        const o = this.o
        o.u8(kind)
        o.u16(id.length)
        o.bytes(id)
        return o
    }
}

export class JournalError extends Error {}

// The records of every whole frame in `b`, how many bytes they span, and how
// many bytes past them are dropped: what follows the last whole frame is a
// write cut short, by a kill (a frame's first bytes: that commit never
// returned) or by a power cut (a frame not all written back, or zeros where
// the file grew and its data did not reach the disk). Bytes that are not a
// whole frame with a whole frame after them (damage in the middle), or past
// the last one with no frame mark and not zeros, throw JournalError naming
// the byte.
export function decodeJournal(b: Buffer): { recs: JRecord[]; bytes: number; dropped: number } {
    const recs: JRecord[] = []
    let at = 0
    while (at < b.length) {
        const n = recs.length
        const end = frameAt(b, at, recs)
        if (typeof end === "number") {
            at = end
            continue
        }
        recs.length = n // none of a frame that is not whole
        const next = nextFrame(b, at + 1)
        if (next >= 0) throw new JournalError(`${end}, and a whole frame follows at byte ${next}`)
        const marked = b.length - at < 8 || isMark(b.readUInt32LE(at + 4))
        if (!marked && b.subarray(at).some((x) => x !== 0)) throw new JournalError(end)
        return { recs, bytes: at, dropped: b.length - at }
    }
    return { recs, bytes: at, dropped: 0 }
}

// The end of the whole frame at `at`, its records pushed onto `recs`; or
// why there is none.
function frameAt(b: Buffer, at: number, recs: JRecord[]): number | string {
    if (b.length - at < 8) return `a frame header cut short at byte ${at}`
    const mark = b.readUInt32LE(at + 4)
    if (!isMark(mark)) return `no frame mark at byte ${at}`
    const head = mark === MARK ? HEAD : 8
    if (b.length - at < head) return `a frame header cut short at byte ${at}`
    const len = b.readUInt32LE(at)
    if (b.length - at - head < len) return `the frame at byte ${at} runs past the end (a body of ${len} bytes)`
    const body = at + head
    if (mark === MARK && crc32(b, body, body + len) !== b.readUInt32LE(at + 8)) return `the frame at byte ${at} fails its CRC (a body of ${len} bytes)`
    try {
        decodeBody(b.subarray(body, body + len), recs, body)
    } catch (e) {
        if (e instanceof JournalError) return `the frame at byte ${at} is damaged: ${e.message}`
        throw e
    }
    return body + len
}

function isMark(x: number): boolean {
    return x === MARK || x === MARK_NO_CRC
}

// Where the first whole frame at or past `from` starts, or -1. Both marks
// end in the same three bytes (little-endian: 01|02 e0 a7 d5).
function nextFrame(b: Buffer, from: number): number {
    const tail = Buffer.from([0xe0, 0xa7, 0xd5])
    for (let m = b.indexOf(tail, from + 5); m >= 0; m = b.indexOf(tail, m + 1)) {
        if (typeof frameAt(b, m - 5, []) === "number") return m - 5
    }
    return -1
}

function decodeBody(b: Buffer, recs: JRecord[], base: number): void {
    let p = 0
    const need = (k: number) => {
        if (p + k > b.length) throw new JournalError(`a record runs past its frame at byte ${base + p}`)
    }
    const u8 = () => (need(1), b[p++]!)
    const u16 = () => (need(2), (p += 2), b.readUInt16LE(p - 2))
    const u32 = () => (need(4), (p += 4), b.readUInt32LE(p - 4))
    const i32 = () => (need(4), (p += 4), b.readInt32LE(p - 4))
    const f64 = () => (need(8), (p += 8), b.readDoubleLE(p - 8))
    const raw = (k: number) => (need(k), (p += k), Buffer.from(b.subarray(p - k, p)))
    const str = (k: number) => raw(k).toString()
    while (p < b.length) {
        const kind = u8()
        const idLen = u16()
        if (idLen === 0) throw new JournalError(`a record with an empty id at byte ${base + p - 3}`)
        const id = str(idLen)
        switch (kind) {
            case J_LINK: {
                const epoch = str(u8())
                const peerEpoch = str(u8())
                const seen: number[] = [...raw(32)]
                recs.push({ kind, id, link: { epoch, peerEpoch, seen, newest: i32(), nextSeq: f64(), received: f64(), duplicates: f64(), resent: f64() } })
                break
            }
            case J_OWED: {
                const key = f64()
                const seq = f64()
                const wait = u8() === 1
                recs.push({ kind, id, owed: { key, seq, wait, payload: raw(u32()) } })
                break
            }
            case J_KEPT: {
                const key = f64()
                const mid = u8()
                recs.push({ kind, id, kept: { key, id: mid, payload: raw(u32()) } })
                break
            }
            case J_DROP_OWED:
            case J_DROP_KEPT:
                recs.push({ kind, id, key: f64() })
                break
            case J_REMOVE:
                recs.push({ kind, id })
                break
            default:
                throw new JournalError(`unknown record kind ${kind} at byte ${base + p - 1}`)
        }
    }
}
