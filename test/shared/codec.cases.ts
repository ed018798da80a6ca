import { ackLine, messageLine, parseLine, KEEPALIVE_LINE } from "../../src/shared/codec.js"
import { helloLine, parseHello, PROBE_BLANKS } from "../../src/shared/hello.js"
import { wireId, SEQ_LIMIT } from "../../src/shared/ids.js"
import { Sender } from "../../src/shared/sender.js"
import { bytes, eq, eqList, suite } from "./harness.js"

// Fixture table (mqtt-packet style): wire line without "\n" -> what it is.
const LINES: string[][] = [
    // line, kind, id, payload
    ["", "keepalive", "", ""],
    ["00", "ack", "0", ""],
    ["0a", "ack", "10", ""],
    ["ff", "ack", "255", ""],
    ["FF", "ack", "255", ""], // the original's int(s, 16) takes upper case
    ["00hello", "message", "0", "hello"],
    ["7f{\"t\": 21.5}", "message", "127", '{"t": 21.5}'],
    ["01 ", "message", "1", " "],
    ["02\u00e9t\u00e9", "message", "2", "\u00e9t\u00e9"],
    ["zz", "bad", "", ""], // fault 4: non-hex ids are values, not exceptions
    ["zzhello", "bad", "", ""],
    ["0g", "bad", "", ""],
    [" 1x", "bad", "", ""],
    ["a", "bad", "", ""],
    ["\r", "bad", "", ""],
    ["!hello epoch=abc", "ext", "", ""],
]

export const codecSuite = suite("codec", function (test) {
    test("PROTOCOL lines: each fixture parses to its kind, id and payload", async function () {
        for (let i = 0; i < LINES.length; i++) {
            const f = LINES[i]
            const l = parseLine(bytes(f[0]))
            eq(l.kind, f[1], "kind of " + f[0])
            if (l.kind === "ack") eq(l.id, +f[2], "ack id of " + f[0])
            if (l.kind === "message") {
                eq(l.id, +f[2], "message id of " + f[0])
                eq(l.payload, f[3], "payload of " + f[0])
            }
        }
    })
    test("encoding: keepalive, ACK and message lines are v1 bytes", async function () {
        eq(KEEPALIVE_LINE, "\n", "keepalive")
        eq(ackLine(0), "00\n", "ack 0")
        eq(ackLine(171), "ab\n", "ack 171")
        eq(messageLine(255, "x"), "ffx\n", "message 255")
        eq(messageLine(1, "{}"), "01{}\n", "message 1")
    })
    test("round trip: every id survives message and ACK encoding", async function () {
        for (let id = 0; id < 256; id++) {
            const m = parseLine(bytes(messageLine(id, "p").slice(0, -1)))
            eq(m.kind === "message" ? m.id : -1, id, "message id")
            const a = parseLine(bytes(ackLine(id).slice(0, -1)))
            eq(a.kind === "ack" ? a.id : -1, id, "ack id")
        }
    })
    test("message ids: 00 first, then 01..ff, then 01 again (00 never reused)", async function () {
        eqList([wireId(0), wireId(1), wireId(2), wireId(255), wireId(256), wireId(510), wireId(511)], [0, 1, 2, 255, 1, 255, 1], "ids")
    })
    test("message ids: still consecutive after 10^9 messages (sequence renumbered before % breaks on DeviceScript)", async function () {
        const s = new Sender({ timeout: 2000, maxLineBytes: 100, window: 64, maxInflightBytes: 10000, maxQueuedLines: 100, maxQueuedBytes: 10000 })
        s.nextSeq = SEQ_LIMIT - 3 // as if that many had been sent
        for (let i = 0; i < 6; i++) s.enqueue("m" + i, true, false, -1)
        s.admit()
        const done: number[] = []
        let prev = -1
        for (let i = 0; i < 6; i++) {
            const b = s.nextLine(0, done)
            const l = b ? parseLine(b.slice(0, b.length - 1)) : undefined
            const id = l && l.kind === "message" ? l.id : -1
            eq(id, wireId(SEQ_LIMIT - 3 + i), "id " + i)
            if (prev >= 0) eq(id, prev === 255 ? 1 : prev + 1, "consecutive")
            prev = id
            eq(s.ack(id, []) > 0, true, "ACK matches")
        }
    })
    test("message ids chosen by a relay: sent as chosen, the sequence skips forward to each, 00 never sent", async function () {
        const s = new Sender({ timeout: 2000, maxLineBytes: 100, window: 64, maxInflightBytes: 10000, maxQueuedLines: 100, maxQueuedBytes: 10000 })
        // -1: the next id. 3 after 6 has wrapped: 252 ids on, not back.
        const chosen = [5, 6, 3, -1, 255, 1]
        const ids: number[] = []
        for (let i = 0; i < chosen.length; i++) {
            s.enqueue("m" + i, true, true, chosen[i])
            s.admit()
            const b = s.nextLine(0, [])
            const l = b ? parseLine(b.slice(0, b.length - 1)) : undefined
            const id = l && l.kind === "message" ? l.id : -1
            ids.push(id)
            eq(s.ack(id, []) > 0, true, "ACK of " + id + " matches")
        }
        eqList(ids, [5, 6, 3, 4, 255, 1], "wire ids")
    })
    test("message ids chosen by a relay: a chosen id never passes a wait write queued before it", async function () {
        const s = new Sender({ timeout: 2000, maxLineBytes: 100, window: 64, maxInflightBytes: 10000, maxQueuedLines: 100, maxQueuedBytes: 10000 })
        // 10 and 11 in flight; 200 (a skip: wait) blocks behind them; 201 must not go past it.
        const chosen = [10, 11, 200, 201]
        for (let i = 0; i < chosen.length; i++) s.enqueue("m" + i, true, i === 2, chosen[i])
        s.admit()
        const sent: number[] = []
        const next = function (): number {
            const b = s.nextLine(0, [])
            const l = b ? parseLine(b.slice(0, b.length - 1)) : undefined
            return l && l.kind === "message" ? l.id : -1
        }
        for (let id = next(); id >= 0; id = next()) sent.push(id)
        eqList(sent, [10, 11], "only the lines before the wait write")
        eq(s.ack(10, []) > 0 && s.ack(11, []) > 0, true, "ACKs match")
        s.admit()
        for (let id = next(); id >= 0; id = next()) sent.push(id)
        eqList(sent, [10, 11, 200, 201], "then in order")
    })
    test("hello: epoch parsed; other ! lines are not hellos", async function () {
        eq(helloLine("ab12"), "!hello epoch=ab12\n", "hello line")
        eq(parseHello("!hello epoch=ab12"), "ab12", "epoch")
        eq(parseHello("!hello epoch=ab12 auth=x"), "ab12", "epoch with more fields")
        eq(parseHello("!hello"), "", "no epoch")
        eq(parseHello("!helloworld"), undefined, "not a hello")
        eq(parseHello("!bye"), undefined, "other extension")
        eq(PROBE_BLANKS > 8, true, "probe longer than a v1 client's keepalives before it gives up")
    })
})
