// Cuts a byte stream into lines at "\n" (docs/protocol.md, "Transport").
//
// Framing is on bytes, so a UTF-8 character split across reads is joined
// before anything decodes it (fault 3). `push` only queues; each `next` call
// returns at most one line, so a large chunk is framed in bounded steps the
// caller can yield between (the DeviceScript VM kills a fiber that runs ~128K
// opcodes). Each byte is scanned by the native indexOf and copied at most
// once, when its line is complete.
//
// A line over `maxLineBytes` is reported once ("too-long") where it stood and
// skipped. `push` tracks the line the queued bytes end in, so once that line
// passes the limit its bytes are dropped as they arrive instead of being
// queued: whatever a peer sends, the framer holds at most the limit plus the
// chunks not yet framed. One framer belongs to one socket (fault 2).
// A "too-long" frame carries the line's first HEAD bytes (its message id), so
// the link can answer it (limits.ts) instead of leaving it un-ACKed.

import { NEWLINE } from "./codec.js"

export type Frame = { kind: "line"; line: Buffer } | { kind: "too-long"; limit: number; head: Buffer }

const HEAD = 2

// Marks, in the queue, where an over-long line stood.
const CUT = Buffer.alloc(0)

export class LineFramer {
    protected chunks: Buffer[] = []
    protected head = 0 // index of the chunk being read
    protected pos = 0 // offset in chunks[head]
    protected parts: Buffer[] = [] // the line read so far
    protected partBytes = 0
    protected skipping = false // next(): inside an over-long line, until its "\n"
    protected queued = 0 // bytes pushed and not yet consumed
    protected tail = 0 // push(): bytes of the line the queued bytes end in
    private dropping = false // push(): dropping an over-long line, until its "\n"

    // `early`: recognise over-long lines in push() (false for a reader that
    // takes only the first line, whose limit does not apply to the rest).
    constructor(readonly maxLineBytes: number, readonly early: boolean = true) {}

    push(chunk: Buffer): void {
        let c = chunk
        if (c.length === 0) return
        if (!this.early) return this.enqueue(c)
        if (this.dropping) {
            const nl = c.indexOf(NEWLINE)
            if (nl < 0) return
            this.dropping = false
            this.tail = 0
            c = c.slice(nl + 1)
            if (c.length === 0) return
        }
        let last = c.lastIndexOf(NEWLINE)
        if (last >= 0 && this.tail + last > this.maxLineBytes && this.hasLongLine(c, last)) {
            // Whole over-long lines inside one chunk (a simulator can hand
            // over 40 KB at once): drop them now, not when framed.
            this.queueLines(c, last + 1)
            this.tail = 0
            if (last + 1 === c.length) return
            c = c.slice(last + 1)
            last = -1
        }
        const tail = last < 0 ? this.tail + c.length : c.length - last - 1
        if (tail > this.maxLineBytes) {
            // The line this chunk ends in is over-long: queue what precedes
            // it and its head, mark it, and drop its bytes up to its "\n".
            const keep = this.headKeep(last < 0 ? this.tail : 0)
            if (last + 1 + keep > 0) this.enqueue(c.slice(0, last + 1 + keep))
            this.chunks.push(CUT)
            this.dropping = true
            this.tail = 0
            return
        }
        this.tail = tail
        this.enqueue(c)
    }

    // Bytes pushed but not yet framed (includes a partial line).
    buffered(): number {
        return this.queued + this.partBytes
    }

    next(): Frame | undefined {
        while (this.head < this.chunks.length) {
            const c = this.chunks[this.head]
            if (c === CUT) {
                this.nextChunk(0)
                return this.cut(c, 0)
            }
            const start = this.pos
            const nl = c.indexOf(NEWLINE, start)
            if (nl < 0) {
                const n = c.length - start
                this.nextChunk(n)
                if (this.skipping) continue
                if (this.partBytes + n > this.maxLineBytes) {
                    this.skipping = true // until its "\n"
                    return this.cut(c, start)
                }
                this.parts.push(start === 0 ? c : c.slice(start))
                this.partBytes += n
                continue
            }
            const n = nl - start
            this.pos = nl + 1
            this.queued -= n + 1
            if (this.pos >= c.length) this.nextChunk(0)
            if (this.skipping) {
                this.skipping = false
                continue
            }
            if (this.partBytes + n > this.maxLineBytes) return this.cut(c, start)
            return { kind: "line", line: this.join(c, start, nl) }
        }
        return undefined
    }

    // True when a line ending in c[0, last] is over-long (the first may have
    // begun in earlier chunks: this.tail bytes). Scans without copying: on
    // DeviceScript, slice copies.
    private hasLongLine(c: Buffer, last: number): boolean {
        let start = 0
        let before = this.tail
        while (start <= last) {
            const nl = c.indexOf(NEWLINE, start)
            if (before + nl - start > this.maxLineBytes) return true
            before = 0
            start = nl + 1
        }
        return false
    }

    // Queues the lines in c[0, end), each over-long one replaced by a CUT.
    private queueLines(c: Buffer, end: number): void {
        let from = 0
        let start = 0
        let before = this.tail
        while (start < end) {
            const nl = c.indexOf(NEWLINE, start)
            if (before + nl - start > this.maxLineBytes) {
                const keep = this.headKeep(before)
                if (start + keep > from) this.enqueue(c.slice(from, start + keep))
                this.chunks.push(CUT)
                from = nl + 1
            }
            before = 0
            start = nl + 1
        }
        if (from < end) this.enqueue(c.slice(from, end))
    }

    private enqueue(c: Buffer): void {
        this.chunks.push(c)
        this.queued += c.length
    }

    // The line read so far, then c from start, is over-long: its frame.
    private cut(c: Buffer, start: number): Frame {
        const head = this.headOf(c, start)
        this.parts = []
        this.partBytes = 0
        return { kind: "too-long", limit: this.maxLineBytes, head: head }
    }

    // Bytes of an over-long line's head still to keep when `before` of it are
    // queued: never past the limit, so the head alone is not over-long.
    private headKeep(before: number): number {
        const h = Math.min(HEAD, this.maxLineBytes)
        return Math.max(h - before, 0)
    }

    // The first HEAD bytes of the line read so far, then of c from start.
    private headOf(c: Buffer, start: number): Buffer {
        const h = Buffer.alloc(HEAD)
        let n = 0
        for (let i = 0; i < this.parts.length && n < HEAD; i++) {
            const p = this.parts[i]
            for (let j = 0; j < p.length && n < HEAD; j++) h[n++] = p[j]
        }
        for (let j = start; j < c.length && n < HEAD; j++) h[n++] = c[j]
        return n === HEAD ? h : h.slice(0, n)
    }

    private nextChunk(consumed: number): void {
        this.queued -= consumed
        this.head++
        this.pos = 0
        // Drop consumed chunks now and then; no splice on DeviceScript.
        if (this.head >= this.chunks.length) {
            this.chunks = []
            this.head = 0
        } else if (this.head >= 16) {
            this.chunks = this.chunks.slice(this.head)
            this.head = 0
        }
    }

    private join(c: Buffer, start: number, end: number): Buffer {
        if (this.parts.length === 0) return c.slice(start, end)
        const total = this.partBytes + end - start
        const out = Buffer.alloc(total)
        let off = 0
        for (let i = 0; i < this.parts.length; i++) {
            out.set(this.parts[i], off)
            off += this.parts[i].length
        }
        if (end > start) out.set(c.slice(start, end), off)
        this.parts = []
        this.partBytes = 0
        return out
    }
}

// A framer for a reader that takes the first lines of a socket (the id
// line, the keyed handshake: server only) and hands the rest to the link.
// Its own class, so that a board's framer does not compile takeRest().
export class HandoffFramer extends LineFramer {
    // Everything not yet returned as a line, in order.
    takeRest(): Buffer[] {
        const rest: Buffer[] = this.skipping ? [] : this.parts.slice(0)
        for (let i = this.head; i < this.chunks.length; i++) {
            const c = this.chunks[i]
            if (c === CUT) continue
            rest.push(i === this.head && this.pos > 0 ? c.slice(this.pos) : c)
        }
        this.chunks = []
        this.head = 0
        this.pos = 0
        this.parts = []
        this.partBytes = 0
        this.queued = 0
        this.tail = 0
        return rest
    }
}
