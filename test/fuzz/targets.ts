// Fuzz targets for the small parts of the core, each with a reference model.

import { LineFramer } from "../../src/shared/framer.js"
import { parseLine, messageLine, ackLine } from "../../src/shared/codec.js"
import { SeenIds } from "../../src/shared/dedup.js"
import { wireId } from "../../src/shared/ids.js"
import { IdReader, IdResult } from "../../src/shared/idline.js"
import { parseHello, helloLine } from "../../src/shared/hello.js"
import { must, shrinkList, Target } from "./engine.js"
import { chunksOf, FRAGMENTS, hex2, mutate, randomBytes, randomCuts, Rng, shrinkBytes, toHex } from "./gen.js"

// ---- shared reference: split a byte string at "\n"

export interface RefSplit {
    lines: Buffer[] // complete lines, without "\n"
    partial: Buffer // bytes after the last "\n"
}

export function refSplit(b: Buffer): RefSplit {
    const lines: Buffer[] = []
    let start = 0
    for (let i = 0; i < b.length; i++) {
        if (b[i] === 0x0a) {
            lines.push(b.subarray(start, i))
            start = i + 1
        }
    }
    return { lines: lines, partial: b.subarray(start) }
}

function isUtf8(b: Buffer): boolean {
    return Buffer.from(b.toString("utf-8"), "utf-8").equals(b)
}

// A stream made of valid fragments, then mutated; or plain random bytes.
function stream(r: Rng, limit: number): Buffer {
    const parts: Buffer[] = []
    const n = r.skewed(40)
    for (let i = 0; i < n; i++) parts.push(r.chance(80) ? r.pick(FRAGMENTS) : randomBytes(r, r.skewed(limit * 2 + 4)))
    let b = r.chance(15) ? randomBytes(r, r.skewed(limit * 4 + 8)) : Buffer.concat(parts)
    if (r.chance(70)) b = mutate(r, b, limit, 1 + r.skewed(8))
    return b
}

// ---- framer

interface FramerInput {
    limit: number
    early: boolean
    bytes: Buffer
    cuts: number[]
    drains: number[] // after each chunk: frames to take (-1: all), cyclic
}

function runFramer(x: FramerInput): void {
    const f = new LineFramer(x.limit, x.early)
    const chunks = chunksOf(x.bytes, x.cuts)
    const got: string[] = []
    let sinceDrain = 0
    let pushed = 0
    let lastNl = -1 // offset of the last "\n" pushed
    const take = (max: number): boolean => {
        for (let i = 0; max < 0 || i < max; i++) {
            const fr = f.next()
            if (fr === undefined) return true
            got.push(fr.kind === "line" ? "L" + fr.line.toString("hex") : "TOO-LONG")
            if (fr.kind === "line") must(fr.line.length <= x.limit, "line of " + fr.line.length + " bytes returned, limit " + x.limit)
        }
        return false
    }
    for (let ci = 0; ci < chunks.length; ci++) {
        const c = chunks[ci]
        f.push(c)
        for (let i = 0; i < c.length; i++) if (c[i] === 0x0a) lastNl = pushed + i
        pushed += c.length
        sinceDrain += c.length
        must(f.buffered() <= x.limit + sinceDrain, "buffered " + f.buffered() + " > limit " + x.limit + " + " + sinceDrain + " bytes not yet framed")
        const d = x.drains.length === 0 ? -1 : x.drains[ci % x.drains.length]
        if (take(d)) {
            sinceDrain = 0
            const partial = pushed - lastNl - 1
            const want = partial <= x.limit ? partial : 0
            must(f.buffered() === want, "after a full drain buffered " + f.buffered() + ", expected " + want + " (partial line of " + partial + ")")
        }
    }
    take(-1)
    const ref = refSplit(x.bytes)
    const want: string[] = ref.lines.map((l) => (l.length > x.limit ? "TOO-LONG" : "L" + l.toString("hex")))
    if (ref.partial.length > x.limit) want.push("TOO-LONG")
    must(got.length === want.length, "frames: got " + got.length + ", reference " + want.length + " [" + got.slice(0, 6).join(" ") + "] vs [" + want.slice(0, 6).join(" ") + "]")
    for (let i = 0; i < got.length; i++) must(got[i] === want[i], "frame " + i + ": got " + got[i] + ", reference " + want[i])
}

export const framerTarget: Target<FramerInput> = {
    name: "framer",
    what: "same frames as a reference splitter (over-long lines reported once, also unfinished ones); buffered <= limit + unframed chunks, exactly the partial line after a drain",
    gen(r) {
        const limit = r.chance(70) ? 1 + r.skewed(64) : r.pick([1, 2, 3, 16, 255, 256, 1024, 2050])
        const bytes = stream(r, limit)
        const drains: number[] = []
        const nd = r.int(4)
        for (let i = 0; i < nd; i++) drains.push(r.chance(40) ? -1 : r.int(3))
        return { limit: limit, early: r.chance(75), bytes: bytes, cuts: randomCuts(r, bytes.length), drains: drains }
    },
    check: runFramer,
    shrink(x, fails) {
        let cur = x
        const cuts = shrinkList(cur.cuts, (c) => fails({ ...cur, cuts: c }), 200)
        cur = { ...cur, cuts: cuts }
        const bytes = shrinkBytes(cur.bytes, (b) => fails({ ...cur, bytes: b }), 400)
        return { ...cur, bytes: bytes, cuts: cur.cuts.filter((c) => c < bytes.length) }
    },
    show(x) {
        return "limit " + x.limit + (x.early ? "" : " (not early)") + ", cuts [" + x.cuts.join(",") + "], drains [" + x.drains.join(",") + "], bytes " + toHex(x.bytes)
    },
}

// ---- codec

interface CodecInput {
    line: Buffer
}

function refParse(b: Buffer): string {
    if (b.length === 0) return "keepalive"
    if (b[0] === 0x21) return "ext"
    const hex = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
    if (b.length < 2 || !hex(b[0]) || !hex(b[1])) return "bad"
    return b.length === 2 ? "ack" : "message"
}

export const codecTarget: Target<CodecInput> = {
    name: "codec",
    what: "total; kind as a reference classifier; id and payload as the bytes say; canonical lines round-trip through messageLine/ackLine",
    gen(r) {
        const mode = r.int(4)
        if (mode === 0) {
            // an encoded message or ACK, maybe mutated
            const id = r.int(256)
            const payload = randomBytes(r, 1 + r.skewed(40)).toString("utf-8").split("\n").join("")
            let b: Buffer = Buffer.from(payload.length === 0 || r.chance(20) ? ackLine(id) : messageLine(id, payload)).subarray(0, -1)
            if (r.chance(30)) b = mutate(r, b, 8, 1)
            return { line: b }
        }
        if (mode === 1) return { line: randomBytes(r, r.skewed(12)) }
        return { line: mutate(r, r.pick(FRAGMENTS), 8, 1 + r.skewed(4)) }
    },
    check(x) {
        const b = x.line
        const p = parseLine(b)
        const k = refParse(b)
        must(p.kind === k, "kind " + p.kind + ", reference " + k)
        if (p.kind === "ack" || p.kind === "message") {
            must(Number.isInteger(p.id) && p.id >= 0 && p.id <= 255, "id " + p.id)
            must(p.id === parseInt(b.subarray(0, 2).toString("latin1"), 16), "id " + p.id + " differs from its digits")
            const lower = hex2(p.id) === b.subarray(0, 2).toString("latin1")
            if (p.kind === "ack" && lower) must(ackLine(p.id) === b.toString("latin1") + "\n", "ACK does not round-trip")
            if (p.kind === "message") {
                must(p.payload === b.subarray(2).toString("utf-8"), "payload differs from its bytes")
                if (lower && isUtf8(b)) must(Buffer.from(messageLine(p.id, p.payload)).equals(Buffer.concat([b, Buffer.from("\n")])), "message does not round-trip")
            }
        }
        if (p.kind === "ext") must(p.text === b.toString("utf-8") && p.text.charCodeAt(0) === 33, "ext text")
        if (p.kind === "bad") must(typeof p.reason === "string" && p.reason.length > 0, "bad without a reason")
    },
    shrink(x, fails) {
        return { line: shrinkBytes(x.line, (b) => fails({ line: b }), 200) }
    },
    show(x) {
        return "line " + toHex(x.line)
    },
}

// ---- dedup: SeenIds against a model of the sender's window rule
//
// The sender (sender.ts) keeps every id that may still arrive within `window`
// (< 120) of the oldest one it has not seen ACKed, lost ones included; ids
// before `lo` never arrive again. The receiver must take an arriving id for a
// duplicate exactly when that message was delivered before.

interface DedupInput {
    window: number
    steps: number
    seed: number
    start: number // sequence number of the first message (a long-running link)
}

function runDedup(x: DedupInput, trace?: number[]): number {
    const r = new Rng(x.seed)
    const s = new SeenIds()
    const delivered = new Set<number>()
    const sent: number[] = []
    let lo = x.start
    let next = x.start
    const lossPct = r.pick([0, 5, 30, 60, 90])
    for (let step = 0; step < x.steps; step++) {
        const a = r.int(10)
        let seq = -1
        if (a < 5 && next < lo + x.window) seq = next++
        else if (a < 8 && next > lo) seq = lo + r.int(next - lo)
        else {
            // lo moves past ids that were delivered, or lost before a later delivered one
            let later = false
            for (let q = lo + 1; q < next; q++) if (delivered.has(q)) later = true
            if (next > lo && (delivered.has(lo) || later)) lo++
            continue
        }
        if (r.int(100) < lossPct) continue
        const id = wireId(seq)
        if (trace) trace.push(id)
        const dup = s.has(id)
        must(dup === delivered.has(seq), "seq " + seq + " (id " + id + ") taken for " + (dup ? "a duplicate" : "new") + ", window " + x.window + ", oldest live seq " + lo + ", newest " + (next - 1) + ", step " + step)
        if (!dup) {
            s.mark(id)
            delivered.add(seq)
        }
        sent.push(seq)
    }
    return sent.length
}

export const dedupTarget: Target<DedupInput> = {
    name: "dedup",
    what: "SeenIds says duplicate exactly for delivered messages, for any arrival order a sender with window < 120 allows (losses, resends, gaps)",
    gen(r) {
        return {
            window: r.chance(50) ? r.pick([1, 2, 16, 64, 100, 119, 120]) : 1 + r.int(120),
            steps: 100 + r.int(1500),
            seed: r.u32(),
            start: r.chance(50) ? 1 : r.int(2000),
        }
    },
    check(x) {
        runDedup(x)
    },
    shrink(x, fails) {
        let lo = 1
        let hi = x.steps
        while (lo < hi) {
            const mid = (lo + hi) >> 1
            if (fails({ ...x, steps: mid })) hi = mid
            else lo = mid + 1
        }
        return { ...x, steps: hi }
    },
    show(x) {
        const trace: number[] = []
        try {
            runDedup(x, trace)
        } catch (e) {}
        return "window " + x.window + ", first seq " + x.start + ", ids marked in order (hex) " + Buffer.from(trace.slice(-300)).toString("hex")
    },
}

// ---- IdReader

interface IdInput {
    max: number
    bytes: Buffer
    cuts: number[]
}

function refId(x: IdInput): { kind: "id"; id: string; rest: Buffer } | { kind: "bad"; reason: string } | undefined {
    const b = x.bytes
    const nl = b.indexOf(0x0a)
    const line = nl < 0 ? b : b.subarray(0, nl)
    if (line.length > x.max) return { kind: "bad", reason: "id longer than " + x.max + " bytes" }
    if (nl < 0) return undefined
    if (line.length === 0) return { kind: "bad", reason: "empty id" }
    for (let i = 0; i < line.length; i++) if (line[i] < 32 && line[i] !== 9) return { kind: "bad", reason: "id contains control byte " + line[i] }
    return { kind: "id", id: line.toString("utf-8"), rest: b.subarray(nl + 1) }
}

export const idlineTarget: Target<IdInput> = {
    name: "idline",
    what: "IdReader on arbitrary first bytes: never throws, id <= max bytes, refusal reasons and the bytes after the id as a reference says, whatever the chunking",
    gen(r) {
        const max = r.chance(50) ? 256 : 1 + r.skewed(40)
        let b: Buffer
        if (r.chance(50)) {
            const id = r.chance(50) ? "board-" + r.int(1000) : randomBytes(r, r.skewed(max + 4)).toString("latin1")
            b = Buffer.concat([Buffer.from(id, "latin1"), Buffer.from("\n"), stream(r, 40)])
            if (r.chance(60)) b = mutate(r, b, max, 1 + r.skewed(6))
        } else b = stream(r, max)
        return { max: max, bytes: b, cuts: randomCuts(r, b.length) }
    },
    check(x) {
        const rd = new IdReader(x.max)
        let res: IdResult | undefined = undefined
        let fedTo = 0
        for (const c of chunksOf(x.bytes, x.cuts)) {
            rd.push(c)
            fedTo += c.length
            res = rd.next()
            if (res !== undefined) break
        }
        const want = refId(x)
        if (want === undefined) return must(res === undefined, "result " + (res && res.kind) + " without a complete first line")
        must(res !== undefined, "no result, reference " + want.kind)
        const got = res as IdResult
        must(got.kind === want.kind, "kind " + got.kind + ", reference " + want.kind + (got.kind === "bad" ? " (" + got.reason + ")" : ""))
        if (got.kind === "bad" && want.kind === "bad") must(got.reason === want.reason, "reason '" + got.reason + "', reference '" + want.reason + "'")
        if (got.kind === "id" && want.kind === "id") {
            must(got.id === want.id, "id differs")
            must(Buffer.byteLength(got.id) <= 3 * x.max && got.id.length <= x.max, "id of " + got.id.length + " chars")
            const rest = Buffer.concat([...got.rest, x.bytes.subarray(fedTo)])
            must(rest.equals(want.rest), "bytes after the id: " + toHex(rest) + ", reference " + toHex(want.rest))
        }
    },
    shrink(x, fails) {
        const cuts = shrinkList(x.cuts, (c) => fails({ ...x, cuts: c }), 200)
        const bytes = shrinkBytes(x.bytes, (b) => fails({ ...x, cuts: cuts.filter((c) => c < b.length), bytes: b }), 400)
        return { ...x, bytes: bytes, cuts: cuts.filter((c) => c < bytes.length) }
    },
    show(x) {
        return "max " + x.max + ", cuts [" + x.cuts.join(",") + "], bytes " + toHex(x.bytes)
    },
}

// ---- hello

interface HelloInput {
    text: Buffer
}

function refHello(s: string): string | undefined {
    const m = /^!hello(?: (.*))?$/s.exec(s)
    if (!m) return undefined
    const words = (" " + (m[1] ?? "")).split(" epoch=")
    if (words.length < 2) return ""
    const e = words[1].split(" ")[0]
    return e.length <= 64 ? e : ""
}

export const helloTarget: Target<HelloInput> = {
    name: "hello",
    what: "parseHello on arbitrary lines: never throws, epoch as a reference parser says (<= 64 chars, no space); helloLine round-trips",
    gen(r) {
        if (r.chance(40)) {
            const e = randomBytes(r, r.skewed(70)).toString("latin1").split("\n").join("")
            let b: Buffer = Buffer.from(helloLine(e)).subarray(0, -1)
            if (r.chance(50)) b = mutate(r, b, 64, 1 + r.skewed(3))
            return { text: b }
        }
        const base = Buffer.from(r.pick(["!hello", "!hello epoch=", "!hello epoch=abc", "!hello x epoch=y z", "!hello  epoch=q", "!hellO", "!"]))
        return { text: mutate(r, base, 64, r.skewed(5)) }
    },
    check(x) {
        const s = x.text.toString("utf-8")
        const got = parseHello(s)
        const want = refHello(s)
        must(got === want, "epoch " + JSON.stringify(got) + ", reference " + JSON.stringify(want))
        if (got !== undefined) must(got.length <= 64 && got.indexOf(" ") < 0, "epoch of " + got.length + " chars")
        // an epoch the driver could draw round-trips
        if (want !== undefined && want.length > 0) must(parseHello(helloLine(want).slice(0, -1)) === want, "helloLine round trip")
    },
    shrink(x, fails) {
        return { text: shrinkBytes(x.text, (b) => fails({ text: b }), 200) }
    },
    show(x) {
        return "line " + toHex(x.text)
    },
}
