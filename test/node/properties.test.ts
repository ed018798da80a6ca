// Property-based tests of the core (Node only: fast-check does not compile
// for DeviceScript; the fixed cases in test/shared run on both).
import assert from "node:assert/strict"
import fc from "fast-check"
import { LineFramer, ClientLink, Link, readable, ServerLink, parseLine, messageLine, SeenIds, wireId, IdReader, MAX_ID_BYTES } from "../../src/shared/index.js"
import { boardCfg, nodeCfg } from "../shared/drive.js"
import { checkDelivery, Sim, Writer, noFaults } from "../shared/sim.js"

function frameAll(chunks: Uint8Array[], max: number): string[] {
    const f = new LineFramer(max)
    const out: string[] = []
    for (const c of chunks) {
        f.push(Buffer.from(c))
        for (let x = f.next(); x; x = f.next()) out.push(x.kind === "line" ? "L" + x.line.toString("hex") : "TOO-LONG")
    }
    return out
}

// Cuts `data` at the given offsets.
function cutAt(data: Uint8Array, cuts: number[]): Uint8Array[] {
    const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b)
    const out: Uint8Array[] = []
    let prev = 0
    for (const p of points) {
        out.push(data.slice(prev, p))
        prev = p
    }
    out.push(data.slice(prev))
    return out
}

const lineBytes = fc.uint8Array({ maxLength: 300 }).map((a) => {
    // Bias towards newlines so that inputs hold many lines.
    return a.map((b) => (b % 5 === 0 ? 10 : b))
})

describe("properties (fast-check)", function () {
    this.timeout(120000)

    it("framer: any chunking of any bytes yields the same lines", function () {
        fc.assert(
            fc.property(lineBytes, fc.array(fc.nat(), { maxLength: 40 }), fc.integer({ min: 1, max: 64 }), (data, cuts, max) => {
                assert.deepEqual(frameAll(cutAt(data, cuts), max), frameAll([data], max))
            }),
            { numRuns: 2000 }
        )
    })

    it("framer: buffered bytes never exceed the line limit once framed", function () {
        fc.assert(
            fc.property(fc.array(lineBytes, { maxLength: 20 }), fc.integer({ min: 1, max: 32 }), (chunks, max) => {
                const f = new LineFramer(max)
                for (const c of chunks) {
                    f.push(Buffer.from(c))
                    while (f.next()) {}
                    assert.ok(f.buffered() <= max, `buffered ${f.buffered()} > ${max}`)
                }
            }),
            { numRuns: 1000 }
        )
    })

    it("framer: without framing, a long run of bytes with no newline is never held beyond the limit", function () {
        fc.assert(
            fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 500 }).map((a) => a.map((b) => (b === 10 ? 11 : b))), { maxLength: 20 }), fc.integer({ min: 1, max: 64 }), fc.uint8Array({ maxLength: 40 }), (chunks, max, prefix) => {
                const f = new LineFramer(max)
                f.push(Buffer.from(prefix))
                const before = f.buffered()
                for (const c of chunks) {
                    f.push(Buffer.from(c))
                    assert.ok(f.buffered() <= before + max, `buffered ${f.buffered()} > ${before} + ${max}`)
                }
            }),
            { numRuns: 1000 }
        )
    })

    it("framer: early (push-time) and late (next-time) detection frame the same lines", function () {
        fc.assert(
            fc.property(lineBytes, fc.array(fc.nat(), { maxLength: 40 }), fc.integer({ min: 1, max: 64 }), (data, cuts, max) => {
                const early = frameAll(cutAt(data, cuts), max)
                const f = new LineFramer(max, false)
                const late: string[] = []
                for (const c of cutAt(data, cuts)) {
                    f.push(Buffer.from(c))
                    for (let x = f.next(); x; x = f.next()) late.push(x.kind === "line" ? "L" + x.line.toString("hex") : "TOO-LONG")
                }
                assert.deepEqual(early, late)
            }),
            { numRuns: 2000 }
        )
    })

    it("codec: any bytes parse to a value, never an exception", function () {
        fc.assert(
            fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
                const l = parseLine(Buffer.from(b))
                assert.ok(["keepalive", "ack", "message", "ext", "bad"].includes(l.kind))
            }),
            { numRuns: 5000 }
        )
    })

    it("codec: every message round-trips (id and payload)", function () {
        const payload = fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }).filter((s) => !s.includes("\n"))
        fc.assert(
            fc.property(fc.integer({ min: 0, max: 255 }), payload, (id, p) => {
                const line = Buffer.from(messageLine(id, p))
                const l = parseLine(line.subarray(0, line.length - 1))
                assert.equal(l.kind, "message")
                if (l.kind === "message") {
                    assert.equal(l.id, id)
                    assert.equal(l.payload, p)
                }
            }),
            { numRuns: 3000 }
        )
    })

    it("link: any bytes at either end, in any chunking, never throw and stay bounded", function () {
        fc.assert(
            fc.property(fc.boolean(), fc.boolean(), fc.array(lineBytes, { maxLength: 12 }), (isServer, board, chunks) => {
                const cfg = board ? boardCfg({ maxLineBytes: 64 }) : nodeCfg({ maxLineBytes: 64 })
                const link: Link = isServer ? new ServerLink(cfg, "e") : new ClientLink(cfg, "e", "dev")
                link.open(0)
                let now = 0
                for (const c of chunks) {
                    now += 7
                    link.receive(Buffer.from(c), now)
                    while (link.step(now)) {}
                    link.handleTimeout(now)
                    while (link.pollTransmit(now)) {}
                    while (link.pollEvent()) {}
                    if (now % 3 === 0) while (link.read(now) !== undefined) {}
                }
                assert.ok(readable(link) <= cfg.maxReceivedLines)
            }),
            { numRuns: 2000 }
        )
    })

    it("handshake: any bytes as an id line give the id, a refusal naming why, or a wait for more, as the model says", function () {
        // Model of the id line: up to the first newline; refused when longer
        // than the limit, empty, or holding a control byte other than tab.
        const expected = (b: Uint8Array): string => {
            const nl = b.indexOf(10)
            const line = nl < 0 ? b : b.subarray(0, nl)
            if (line.length > MAX_ID_BYTES) return "bad:longer than"
            if (nl < 0) return "wait"
            if (line.length === 0) return "bad:empty id"
            if (line.some((c) => c < 32 && c !== 9)) return "bad:control byte"
            return "id:" + Buffer.from(line).toString("utf-8")
        }
        const bytes = fc.oneof(
            fc.uint8Array({ maxLength: 400 }),
            fc.array(fc.constantFrom(9, 10, 13, 0, 65, 0xe2, 0x82, 0xac), { maxLength: 80 }).map((a) => Uint8Array.from(a))
        )
        fc.assert(
            fc.property(bytes, (b) => {
                const r = new IdReader(MAX_ID_BYTES)
                r.push(Buffer.from(b))
                const x = r.next()
                const want = expected(b)
                if (want === "wait") assert.equal(x, undefined)
                else if (want.startsWith("id:")) assert.deepEqual(x && x.kind === "id" ? "id:" + x.id : x, want)
                else {
                    assert.equal(x?.kind, "bad", want)
                    if (x?.kind === "bad") assert.match(x.reason, new RegExp(want.slice(4)))
                }
            }),
            { numRuns: 3000 }
        )
    })

    it("de-duplication: a sender within the window is delivered exactly once, whatever it resends", function () {
        // Model: the sender keeps un-ACKed seqs within W of the next one and
        // may resend any of them at any time; ACKs may be lost.
        fc.assert(
            fc.property(fc.integer({ min: 1, max: 119 }), fc.array(fc.nat(), { minLength: 50, maxLength: 1500 }), (W, choices) => {
                const seen = new SeenIds()
                let next = 1 // seq 0 (id 00) was sent and ACKed at start
                seen.mark(0)
                const unacked: number[] = []
                const delivered = new Map<number, number>()
                for (const c of choices) {
                    const op = c % 3
                    if (op === 0 && (unacked.length === 0 || next - unacked[0] < W)) {
                        unacked.push(next++)
                    }
                    if (unacked.length === 0) continue
                    const seq = unacked[c % unacked.length]
                    const id = wireId(seq)
                    if (!seen.has(id)) {
                        seen.mark(id)
                        delivered.set(seq, (delivered.get(seq) ?? 0) + 1)
                    }
                    if (op === 2) unacked.splice(unacked.indexOf(seq), 1) // ACK arrived
                }
                for (const [seq, n] of delivered) assert.equal(n, 1, `seq ${seq} delivered ${n} times`)
                // Every seq sent at least once reached the receiver once.
                for (let s = 1; s < next; s++) if (!unacked.includes(s)) assert.equal(delivered.get(s), 1, `seq ${s} lost`)
            }),
            { numRuns: 500 }
        )
    })

    it("exactly-once: any loss, duplication, chunking, cut pattern and slow reader, both directions", async function () {
        await fc.assert(
            fc.asyncProperty(
                fc.record({
                    seed: fc.integer({ min: 1, max: 1000000 }),
                    loss: fc.integer({ min: 0, max: 40 }),
                    dup: fc.integer({ min: 0, max: 40 }),
                    cutEvery: fc.integer({ min: 200, max: 5000 }),
                    silent: fc.integer({ min: 0, max: 100 }),
                    chunk: fc.integer({ min: 0, max: 9 }),
                    slow: fc.integer({ min: 0, max: 90 }),
                    wait: fc.boolean(),
                    board: fc.boolean(),
                }),
                async (p) => {
                    const f = noFaults()
                    f.lossPct = p.loss
                    f.dupPct = p.dup
                    f.cutEvery = p.cutEvery
                    f.silentPct = p.silent
                    f.maxChunk = p.chunk
                    f.latency = 1 + (p.seed % 5)
                    f.slowReadPct = p.slow
                    f.until = 15000
                    const sim = new Sim(p.board ? boardCfg({}) : nodeCfg({}), nodeCfg({}), f, p.seed)
                    const cw = (sim.clientWriter = new Writer("c", 30, true, p.wait, p.wait ? 3 : 12))
                    const sw = (sim.serverWriter = new Writer("s", 30, true, p.wait, p.wait ? 3 : 12))
                    const ok = await sim.run(() => cw.finished() && sw.finished() && sim.now > 15000, 300000)
                    assert.ok(ok, `not finished: ${JSON.stringify(p)}`)
                    await sim.runFor(5000)
                    assert.equal(checkDelivery(cw, sim.serverRx, p.wait), "")
                    assert.equal(checkDelivery(sw, sim.clientRx, p.wait), "")
                    assert.equal(sim.serverRx.length, 30)
                    assert.equal(sim.clientRx.length, 30)
                }
            ),
            { numRuns: 500 }
        )
    })
})
