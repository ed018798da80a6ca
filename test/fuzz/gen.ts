// Seeded randomness, valid fragments and byte mutators for the fuzz targets.
// Node only (not compiled for DeviceScript).

// mulberry32 after a splitmix-style scramble of the seed, so that seeds N and
// N+1 (consecutive inputs of one run) give unrelated streams.
export class Rng {
    private s: number
    constructor(seed: number) {
        let z = (seed + 0x9e3779b9) >>> 0
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
        this.s = (z ^ (z >>> 16)) >>> 0
    }
    u32(): number {
        this.s = (this.s + 0x6d2b79f5) >>> 0
        let t = this.s
        t = Math.imul(t ^ (t >>> 15), t | 1)
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
        return (t ^ (t >>> 14)) >>> 0
    }
    // 0 <= x < n
    int(n: number): number {
        return n <= 1 ? 0 : this.u32() % n
    }
    range(lo: number, hi: number): number {
        return lo + this.int(hi - lo + 1)
    }
    chance(pct: number): boolean {
        return this.int(100) < pct
    }
    pick<T>(xs: readonly T[]): T {
        return xs[this.int(xs.length)]
    }
    // Small numbers far more often than large ones.
    skewed(max: number): number {
        const bits = this.int(Math.ceil(Math.log2(max + 1)) + 1)
        return Math.min(max, this.int(2 ** bits))
    }
}

const HEX = "0123456789abcdef"
export function hex2(n: number): string {
    return HEX[(n >> 4) & 15] + HEX[n & 15]
}

export function toHex(b: Uint8Array): string {
    return Buffer.from(b).toString("hex")
}

// Bytes that sit on the edges of the protocol and of UTF-8.
export const EDGE_BYTES = [
    0x0a, 0x0a, 0x0d, 0x00, 0xff, 0xfe, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xdf, 0xe0, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5,
    0x21, 0x20, 0x09, 0x1f, 0x7f, 0x30, 0x39, 0x61, 0x66, 0x41, 0x46, 0x67, 0x47, 0x2f, 0x3a, 0x40, 0x60,
]

// Byte strings worth splicing in: valid lines of both directions, UTF-8 edge
// sequences (complete, cut, invalid), ids near the limits.
export const FRAGMENTS: readonly Buffer[] = [
    "\n", "\n\n\n\n\n\n\n\n\n\n", "\r\n", "00\n", "01\n", "ff\n", "FF\n", "7f\n", "80\n", "0a\n", "00hello\n", "01x\n",
    "ffpayload\n", "fe\u00e9\n", "1A\u20ac\n", "02{\"t\": 21}\n", "!hello epoch=abc\n", "!hello\n", "!hello epoch=\n",
    "!hello  epoch=x y\n", "!hellox\n", "!\n", "zz\n", "zzhello\n", "0\n", "0g\n", "g0\n", "board-1\n", "1\n",
    "\u00e9", "\u20ac", "\ud83d\ude00", "\u0000", "\t",
].map((s) => Buffer.from(s)).concat([
    Buffer.from([0xc3]), Buffer.from([0xe2, 0x82]), Buffer.from([0xf0, 0x9f, 0x98]), Buffer.from([0xc0, 0x80]),
    Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from([0xef, 0xbb, 0xbf]),
    Buffer.from([0xff, 0xfe]), Buffer.from([0x30, 0x30, 0xff, 0x0a]), Buffer.from([0x00, 0x0a]),
])

// A line of exactly n bytes (plus "\n"), starting with a message id.
export function lineOfLength(r: Rng, n: number): Buffer {
    const b = Buffer.alloc(n + 1, 0x61 + r.int(26))
    if (n >= 2) b.write(hex2(r.int(256)), 0, "latin1")
    b[n] = 0x0a
    return b
}

export type Mutator = (r: Rng, b: Buffer, limit: number) => Buffer

function at(r: Rng, b: Buffer): number {
    return r.int(b.length + 1)
}

function ins(b: Buffer, i: number, x: Buffer): Buffer {
    return Buffer.concat([b.subarray(0, i), x, b.subarray(i)])
}

export const MUTATORS: { name: string; fn: Mutator }[] = [
    {
        name: "bitflip",
        fn: (r, b) => {
            if (b.length === 0) return b
            const c = Buffer.from(b)
            c[r.int(c.length)] ^= 1 << r.int(8)
            return c
        },
    },
    {
        name: "edge-byte",
        fn: (r, b) => {
            if (b.length === 0) return Buffer.from([r.pick(EDGE_BYTES)])
            const c = Buffer.from(b)
            c[r.int(c.length)] = r.pick(EDGE_BYTES)
            return c
        },
    },
    { name: "insert-byte", fn: (r, b) => ins(b, at(r, b), Buffer.from([r.chance(50) ? r.pick(EDGE_BYTES) : r.int(256)])) },
    {
        name: "delete",
        fn: (r, b) => {
            if (b.length === 0) return b
            const i = r.int(b.length)
            const n = 1 + r.skewed(Math.max(1, b.length - i - 1))
            return Buffer.concat([b.subarray(0, i), b.subarray(i + n)])
        },
    },
    { name: "splice", fn: (r, b) => ins(b, at(r, b), r.pick(FRAGMENTS)) },
    {
        name: "copy-range",
        fn: (r, b) => {
            if (b.length === 0) return b
            const i = r.int(b.length)
            const n = 1 + r.skewed(b.length - i - 1)
            return ins(b, at(r, b), b.subarray(i, i + n))
        },
    },
    {
        name: "long-run",
        fn: (r, b, limit) => {
            const n = r.chance(50) ? limit - 3 + r.int(7) : 1 + r.skewed(limit * 3)
            return ins(b, at(r, b), Buffer.alloc(Math.max(1, n), r.chance(30) ? 0x0a : r.pick(EDGE_BYTES)))
        },
    },
    { name: "line-near-limit", fn: (r, b, limit) => ins(b, at(r, b), lineOfLength(r, Math.max(0, limit - 3 + r.int(7)))) },
    {
        name: "id-near-limit",
        fn: (r, b) => ins(b, at(r, b), Buffer.from(r.pick(["00", "01", "fe", "ff", "FF", "0f", "f0", "7f", "80"]) + (r.chance(50) ? "" : "x") + "\n")),
    },
    {
        name: "truncate",
        fn: (r, b) => b.subarray(0, r.int(b.length + 1)),
    },
]

export function mutate(r: Rng, b: Buffer, limit: number, rounds: number): Buffer {
    let x = b
    for (let i = 0; i < rounds; i++) x = r.pick(MUTATORS).fn(r, x, limit)
    return x
}

// Random bytes, mostly from interesting places.
export function randomBytes(r: Rng, n: number): Buffer {
    const b = Buffer.alloc(n)
    const mode = r.int(4)
    for (let i = 0; i < n; i++) {
        if (mode === 0) b[i] = r.int(256)
        else if (mode === 1) b[i] = r.chance(15) ? 0x0a : r.pick(EDGE_BYTES)
        else if (mode === 2) b[i] = r.chance(10) ? 0x0a : 0x20 + r.int(95)
        else b[i] = r.pick([0x0a, 0x30, 0x31, 0x61, 0x66, 0x46, 0x21, 0xc3, 0xa9, 0xff])
    }
    return b
}

// Cut points (sorted, unique, inside 1..len-1): the chunking of a stream.
export function randomCuts(r: Rng, len: number): number[] {
    if (len < 2) return []
    const mode = r.int(5)
    const cuts = new Set<number>()
    if (mode === 0) return []
    if (mode === 1) for (let i = 1; i < len; i++) cuts.add(i) // a byte per chunk
    else {
        const n = mode === 2 ? 1 : r.skewed(Math.min(len - 1, 64))
        for (let i = 0; i < n; i++) cuts.add(1 + r.int(len - 1))
    }
    return [...cuts].sort((a, b) => a - b)
}

export function chunksOf(b: Buffer, cuts: number[]): Buffer[] {
    const out: Buffer[] = []
    let prev = 0
    for (const c of cuts) {
        if (c <= prev || c >= b.length) continue
        out.push(b.subarray(prev, c))
        prev = c
    }
    out.push(b.subarray(prev))
    return out
}

// Greedy delta debugging over a byte string: drop ranges (halves down to
// single bytes) while `fails` stays true. Bounded by `budget` checks.
export function shrinkBytes(b: Buffer, fails: (x: Buffer) => boolean, budget: number): Buffer {
    let cur = b
    let checks = 0
    for (let size = Math.max(1, cur.length >> 1); size >= 1; size = size >> 1) {
        let i = 0
        while (i < cur.length && checks < budget) {
            const cand = Buffer.concat([cur.subarray(0, i), cur.subarray(i + size)])
            checks++
            if (fails(cand)) cur = cand
            else i += size
        }
        if (size === 1) break
    }
    return cur
}
