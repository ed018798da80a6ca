// Cuts a byte stream into lines at "\n" (PROTOCOL.md, "Transport").
//
// Framing is on bytes, so a UTF-8 character split across reads is joined
// before anything decodes it (fault 3). `push` only queues; each `next` call
// returns at most one line, so a large chunk is framed in bounded steps the
// caller can yield between (the DeviceScript VM kills a fiber that runs ~128K
// opcodes). Each byte is scanned once by the native indexOf and copied at most
// once, when its line is complete. A line over `maxLineBytes` is reported and
// skipped without being stored, so memory stays bounded whatever arrives.
// One framer belongs to one socket: a new socket gets a new framer (fault 2).

import { NEWLINE } from "./codec.js"

export type Frame = { kind: "line"; line: Buffer } | { kind: "too-long"; limit: number }

export class LineFramer {
    private chunks: Buffer[] = []
    private head = 0 // index of the chunk being read
    private pos = 0 // offset in chunks[head]
    private parts: Buffer[] = [] // the line read so far
    private partBytes = 0
    private skipping = false // inside an over-long line, until its "\n"
    private queued = 0 // bytes pushed and not yet consumed

    constructor(readonly maxLineBytes: number) {}

    push(chunk: Buffer): void {
        if (chunk.length === 0) return
        this.chunks.push(chunk)
        this.queued += chunk.length
    }

    // Bytes pushed but not yet framed (includes a partial line).
    buffered(): number {
        return this.queued + this.partBytes
    }

    next(): Frame | undefined {
        while (this.head < this.chunks.length) {
            const c = this.chunks[this.head]
            const start = this.pos
            const nl = c.indexOf(NEWLINE, start)
            if (nl < 0) {
                const n = c.length - start
                this.nextChunk(n)
                if (this.skipping) continue
                if (this.partBytes + n > this.maxLineBytes) return this.startSkipping()
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
            if (this.partBytes + n > this.maxLineBytes) {
                this.parts = []
                this.partBytes = 0
                return { kind: "too-long", limit: this.maxLineBytes }
            }
            return { kind: "line", line: this.join(c, start, nl) }
        }
        return undefined
    }

    // Everything not yet returned as a line, in order: used by the server to
    // hand the bytes that followed the id line to the link.
    takeRest(): Buffer[] {
        const rest: Buffer[] = this.skipping ? [] : this.parts.slice(0)
        for (let i = this.head; i < this.chunks.length; i++) {
            const c = this.chunks[i]
            rest.push(i === this.head && this.pos > 0 ? c.slice(this.pos) : c)
        }
        this.chunks = []
        this.head = 0
        this.pos = 0
        this.parts = []
        this.partBytes = 0
        this.queued = 0
        return rest
    }

    private startSkipping(): Frame {
        this.skipping = true
        this.parts = []
        this.partBytes = 0
        return { kind: "too-long", limit: this.maxLineBytes }
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
