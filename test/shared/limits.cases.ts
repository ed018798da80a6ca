// Line-size limits (src/shared/limits.ts): the cipher's limit under
// encryption, the limit each end announces in its hello, a refusal instead
// of an un-ACKed over-long line, the framer's head of a cut line, and the
// board's framing budget. Run on Node and in the DeviceScript VM.

import { answerLine, challengeLine, deriveSession, helloField, helloLine, ClientLink, ServerLink, linkAuth, setAuth, parseHello, peerLimit, proof, proofLine, resolveConfig, nodeDefaults, boardDefaults, ServerAuth, Transcript } from "../../src/shared/index.js"
import { framingBudget, heapOfArch, MAX_ENCRYPTED_LINE, parseMax, parseTooLong, tooLongLine } from "../../src/shared/limits.js"
import { LineFramer } from "../../src/shared/framer.js"
import { blanks, boardCfg, Drive, serverDrive } from "./drive.js"
import { bytes, crypto, eq, ok, suite, throwsCode } from "./harness.js"

// n copies of "x" without a loop per character (the VM's opcode limit).
function xs(n: number): string {
    let s = "x"
    while (s.length * 2 <= n) s = s + s
    return s.length < n ? s + s.slice(0, n - s.length) : s
}

// `s` with its first `from` replaced by `to` (the VM's strings have no replace).
function swap(s: string, from: string, to: string): string {
    const at = s.indexOf(from)
    return at < 0 ? s : s.slice(0, at) + to + s.slice(at + from.length)
}

function failedCodes(d: Drive): string {
    let s = ""
    for (let i = 0; i < d.events.length; i++) {
        const e = d.events[i]
        if (e.type === "failed") s += (s === "" ? "" : ",") + e.ticket + ":" + e.error.code
    }
    return s
}

function boardClient(): Drive {
    return new Drive(new ClientLink(boardCfg({}), "brd", "board-1")).open()
}

const NS = "00112233445566778899aabbccddeeff"

// A keyed Node client Link (epoch ec1, zero key), its id line taken and a
// 5,000-byte qos line queued.
function keyedClient(): Drive {
    const d = new Drive(new ClientLink(resolveConfig({}, nodeDefaults()), "ec1", "board-1"))
    setAuth(d.link, linkAuth(crypto(), Buffer.alloc(32), false))
    d.open()
    d.take()
    d.link.write(xs(5000), true, false)
    return d
}

// A board up with a devs-iot server that announced `max` (-1: none).
function boardUp(max: number): Drive {
    const d = boardClient()
    d.take()
    d.feed(max < 0 ? "!hello epoch=S\n" : "!hello epoch=S max=" + max + "\n")
    ok(d.link.status(), "board up")
    d.take()
    return d
}

// A server link up with a devs-iot client that announced `max` (-1: none).
function serverUp(max: number): Drive {
    const d = serverDrive({})
    d.feed(blanks(10))
    d.take()
    d.feed(max < 0 ? "!hello epoch=C\n" : "!hello epoch=C max=" + max + "\n")
    ok(d.link.status(), "server up")
    d.take()
    return d
}

function pairSessions(encrypt: boolean) {
    const key = Buffer.alloc(32)
    const t: Transcript = { id: "board-1", ns: "00112233445566778899aabbccddeeff", nc: "ffeeddccbbaa99887766554433221100", es: "es1", ec: "ec1" }
    return [deriveSession(crypto(), key, "client", t, encrypt), deriveSession(crypto(), key, "server", t, encrypt)]
}

// A Node server link (limit `serverMax`) and a board client joined by hand, up.
function joined(serverMax: number): Drive[] {
    const srv = new Drive(new ServerLink(resolveConfig({ maxLineBytes: serverMax }, nodeDefaults()), "srv")).open()
    const brd = boardClient()
    const first = brd.take()
    srv.feed(first.slice(first.indexOf("\n") + 1)) // the server reads the id line itself
    const p = [srv, brd]
    shuttle(p)
    ok(srv.link.status() && brd.link.status(), "both up")
    return p
}

function shuttle(p: Drive[]): void {
    for (let i = 0; i < 6; i++) {
        p[0].advance(0)
        p[1].advance(0)
        const a = p[1].take()
        if (a !== "") p[0].feed(a)
        const b = p[0].take()
        if (b !== "") p[1].feed(b)
    }
}

export const limitsSuite = suite("limits", function (test) {
    // ---- announce
    test("hello max=: parsed; old parsers still read the epoch", async function () {
        eq(helloLine("ab", 2048), "!hello epoch=ab max=2048\n", "hello")
        eq(parseHello("!hello epoch=ab max=2048"), "ab", "epoch")
        eq(parseMax("!hello epoch=ab max=2048"), 2048, "max")
        eq(parseMax(challengeLine("es", "n1", 100).slice(0, -1)), 100, "challenge")
        eq(parseMax(answerLine("ec", "n2", "p", 65533).slice(0, -1)), 65533, "answer")
        eq(parseMax("!hello epoch=ab"), -1, "absent")
        eq(parseMax("!hello epoch=ab max="), -1, "empty")
        eq(parseMax("!hello epoch=ab max=12x"), -1, "not a number")
        eq(parseMax("!hello epoch=ab max=15"), -1, "below 16")
        eq(parseMax("!hello epoch=ab max=99999999999"), -1, "too many digits")
        eq(parseMax("!hello epoch=ab max=-20"), -1, "negative")
        eq(parseMax("!hello max=64 epoch=ab"), 64, "any order")
    })
    test("max= is in the authenticated transcript: changed or added on the path either way, the handshake fails and nothing is learnt from it", async function () {
        // 0: untouched; 1: a max= added to the challenge; 2: the answer's changed.
        for (let i = 0; i < 3; i++) {
            const d = keyedClient()
            const a = new ServerAuth(crypto(), "board-1", [Buffer.alloc(32)], "es1", 2000, false, 0)
            a.push(Buffer.from(blanks(10)))
            a.step(0)
            let ch = (a.pollTransmit() as Buffer).toString("utf-8")
            if (i === 1) ch = swap(ch, "\n", " max=64\n")
            d.feed(ch)
            eq(failedCodes(d), "", "case " + i + ": no write failed on an unproved limit")
            eq(peerLimit(d.link), -1, "case " + i + ": nothing learnt before the proof")
            let ans = d.take()
            if (i === 2) ans = swap(ans, " max=65536", " max=64")
            a.push(Buffer.from(ans))
            const o = a.step(1)
            const back = a.pollTransmit()
            if (back !== undefined) d.feed(back.toString("utf-8"))
            const kind = o === undefined ? "" : o.kind === "auth" ? "auth " + o.peerMax : o.kind
            eq(kind, i === 0 ? "auth 65536" : "fail", "case " + i + ": the server's outcome")
            eq(d.link.status(), i === 0, "case " + i + ": client up")
            eq(failedCodes(d), "", "case " + i + ": the write still queued")
        }
        // A server's max=4096 is learnt with its proof, which must cover it.
        for (let j = 0; j < 2; j++) {
            const d = keyedClient()
            d.feed(challengeLine("es1", NS, 4096))
            eq(peerLimit(d.link), -1, "not before the proof")
            const nc = helloField(d.take(), "auth")
            const t: Transcript = { id: "board-1", ns: NS, nc: nc, es: "es1", ec: "ec1", ms: j === 0 ? "4096" : "", mc: "65536" }
            d.feed(proofLine(proof(crypto(), Buffer.alloc(32), "server", t)))
            eq(d.link.status(), j === 0, j === 0 ? "up with the proof" : "a proof without the max= the client saw is refused")
            eq(peerLimit(d.link), j === 0 ? 4096 : -1, "the limit learnt")
            eq(failedCodes(d), j === 0 ? "1:ETOOLONG" : "", "the queued 5000-byte write fails only on a proved limit")
        }
    })
    test("!toolong lines round-trip", async function () {
        eq(tooLongLine(5, 2048), "!toolong id=05 max=2048\n", "line")
        const r = parseTooLong("!toolong id=0a max=16")
        eq(r === undefined ? -1 : r.id, 10, "id")
        eq(r === undefined ? -1 : r.max, 16, "max")
        eq(parseTooLong("!toolong id=zz max=16"), undefined, "bad id")
        eq(parseTooLong("!toolong"), undefined, "short")
    })
    // ---- cipher
    test("cipher: encrypted default fits AES-CCM; more is ECONFIG", async function () {
        eq(MAX_ENCRYPTED_LINE, 65533, "65535 bytes sealed: a 2-character id and the payload")
        eq(resolveConfig({ encrypt: true }, nodeDefaults()).maxLineBytes, 65533, "Node default under encryption")
        eq(resolveConfig({}, nodeDefaults()).maxLineBytes, 65536, "Node default in clear")
        eq(resolveConfig({ encrypt: true }, boardDefaults()).maxLineBytes, 2048, "board default")
        eq(resolveConfig({ encrypt: true, maxLineBytes: 65533 }, nodeDefaults()).maxLineBytes, 65533, "at the limit")
        throwsCode(function () { resolveConfig({ encrypt: true, maxLineBytes: 65534 }, nodeDefaults()) }, "ECONFIG", "one over")
        let msg = ""
        try {
            resolveConfig({ encrypt: true, maxLineBytes: 65536 }, nodeDefaults())
        } catch (e) {
            msg = (e as { message: string }).message
        }
        ok(msg.indexOf("maxLineBytes (65536)") >= 0 && msg.indexOf("65533") >= 0, "names the setting and the limit: " + msg)
    })
    test("cipher: 2 KB line opens without a per-char loop; bad hex refused", async function () {
        const ss = pairSessions(true)
        const wire = ss[0].seal(Buffer.from("05" + xs(2048)))
        const line = wire.slice(0, wire.length - 1)
        const o = ss[1].open(line)
        eq(o.ok, true, "opens: " + o.reason)
        eq(o.body.length, 2050, "body")
        // Short lines for the bad cases: upper case, a non-hex character, odd length.
        const good = ss[0].seal(Buffer.from("06hello")).toString("utf-8")
        const hex = good.slice(10, good.length - 1)
        const head = "!e00000002"
        const bad = [head + "A" + hex.slice(1), head + "g" + hex.slice(1), head + hex.slice(1), head + hex.slice(0, 20) + " " + hex.slice(21)]
        for (let i = 0; i < bad.length; i++) {
            const s2 = pairSessions(true)
            s2[1].rxSeq = 2
            const r = s2[1].open(Buffer.from(bad[i]))
            eq(r.ok, false, "bad hex " + i)
        }
        const s3 = pairSessions(true)
        s3[1].rxSeq = 2
        eq(s3[1].open(Buffer.from(head + hex)).ok, false, "good hex, wrong nonce: tag fails")
    })
    // ---- announced limits
    test("announce: longer write refused up front; at the limit goes", async function () {
        const d = serverUp(100)
        eq(peerLimit(d.link), 100, "learned")
        let msg = ""
        try {
            d.link.write(xs(101), true, true)
        } catch (e) {
            msg = (e as { code: string; message: string }).code + " " + (e as { message: string }).message
        }
        ok(msg.indexOf("ETOOLONG") === 0 && msg.indexOf("peer's limit (100") >= 0, "names the peer's limit: " + msg)
        d.link.write(xs(100), true, true)
        d.advance(0)
        ok(d.take().indexOf("00" + xs(100) + "\n") >= 0, "sent")
    })
    test("announce: queued writes over it fail at the hello", async function () {
        const d = serverDrive({})
        const long = d.link.write(xs(200), true, true)
        const short = d.link.write("ok", true, true)
        d.feed(blanks(10))
        d.feed("!hello epoch=C max=100\n")
        eq(failedCodes(d), long + ":ETOOLONG", "the long one failed")
        ok(short > long, "tickets")
        ok(d.take().indexOf("00ok\n") >= 0, "the short one sent")
    })
    test("announce: the board's hello carries its limit", async function () {
        const d = boardClient()
        d.take()
        d.feed("!hello epoch=S\n")
        eq(d.take(), "!hello epoch=brd max=2048\n", "hello")
    })
    // ---- refusal on arrival
    test("refuse: over-long message answered !toolong; next delivered", async function () {
        const d = boardUp(65536)
        d.feed("05" + xs(2049) + "\n06ok\n")
        eq(d.rx.length, 1, "one delivered")
        eq(d.rx[0], "ok", "the next")
        d.advance(200)
        const out = d.take()
        ok(out.indexOf("!toolong id=05 max=2048\n") >= 0, "refused: " + out)
        ok(out.indexOf("05\n") < 0, "no ACK beside the refusal")
        ok(out.indexOf("06\n") >= 0, "the next ACKed")
        eq(d.link.stats.tooLong, 1, "counted")
    })
    test("refuse: at the limit delivered; 10x in pieces refused", async function () {
        const d = boardUp(65536)
        d.feed("01" + xs(2048) + "\n")
        eq(d.rx.length, 1, "at the limit")
        eq(d.rx[0].length, 2048, "whole")
        // 10x the limit in 1 KB pieces (a 20 KB string would not fit the VM's heap).
        d.feed("02")
        const k = xs(1024)
        for (let i = 0; i < 20; i++) d.feed(k)
        d.feed("\n")
        d.advance(200)
        ok(d.take().indexOf("!toolong id=02 max=2048\n") >= 0, "10x refused")
        eq(d.link.unframed(), 0, "nothing held")
    })
    test("refuse: no announced limit: ACKed", async function () {
        const d = boardUp(-1)
        d.feed("07" + xs(3000) + "\n")
        d.advance(200)
        eq(d.take(), "07\n", "ACKed")
        eq(d.rx.length, 0, "not delivered")
    })
    test("refuse: sender fails the write, no resend, next goes", async function () {
        const d = serverUp(65536)
        const t1 = d.link.write("a-long-line", true, true)
        const t2 = d.link.write("next", true, true)
        d.advance(0)
        ok(d.take().indexOf("00a-long-line\n") >= 0, "sent")
        d.feed("!toolong id=00 max=16\n")
        eq(failedCodes(d), t1 + ":ETOOLONG", "failed")
        eq(peerLimit(d.link), 16, "limit learned from the refusal")
        d.advance(0)
        ok(d.take().indexOf("01next\n") >= 0, "the next wait write went")
        d.feed("01\n")
        d.advance(5000)
        ok(d.take().indexOf("a-long-line") < 0, "never resent")
        let written = false
        for (let i = 0; i < d.events.length; i++) {
            const e = d.events[i]
            if (e.type === "written" && e.ticket === t2) written = true
        }
        ok(written, "the next one completed")
    })
    test("refuse: pair, both directions, at and over the limit", async function () {
        // server -> board (board limit 2048)
        let p = joined(4096)
        throwsCode(function () { p[0].link.write(xs(2049), true, true) }, "ETOOLONG", "server -> board over 2048")
        p[0].link.write(xs(2048), true, true)
        shuttle(p)
        eq(p[1].rx.length, 1, "board got the 2048-byte line")
        eq(p[1].rx[0].length, 2048, "whole")
        // board -> server (server limit 100)
        p = joined(100)
        throwsCode(function () { p[1].link.write(xs(101), true, true) }, "ETOOLONG", "board -> server over 100")
        p[1].link.write(xs(100), true, true)
        shuttle(p)
        eq(p[0].rx.length, 1, "server got the 100-byte line")
    })
    test("refuse: a peer back as v1: no refusal line, no old limit", async function () {
        const d = serverDrive({ maxLineBytes: 64 })
        d.feed(blanks(10))
        d.feed("!hello epoch=C max=32\n")
        eq(peerLimit(d.link), 32, "devs-iot peer's limit")
        d.link.socketClosed(d.now, "cut")
        d.link.open(d.now)
        d.take()
        d.feed("\n")
        d.advance(500)
        ok(d.link.status(), "up again, as v1")
        eq(peerLimit(d.link), -1, "no limit from a v1 peer")
        d.link.write(xs(40), true, true)
        d.feed("05" + xs(100) + "\n")
        d.advance(0)
        const out = d.take()
        ok(out.indexOf("!") < 0, "no extension line to a v1 peer: " + out)
        ok(out.indexOf("05\n") >= 0, "the over-long line ACKed")
    })
    // ---- framer
    test("framer: a cut line's head on every path", async function () {
        const cases = [
            ["05" + xs(40) + "\nok\n"], // whole in one chunk
            ["ok\n05" + xs(40)], // ends a chunk
            ["0", "5" + xs(40), "\n"], // id split across chunks
            ["05xxx", xs(40), "\n"], // grows past the limit over chunks
        ]
        for (let i = 0; i < cases.length; i++) {
            const f = new LineFramer(16)
            let head = ""
            for (let j = 0; j < cases[i].length; j++) {
                f.push(bytes(cases[i][j]))
                while (true) {
                    const x = f.next()
                    if (x === undefined) break
                    if (x.kind === "too-long") head = x.head.toString("utf-8")
                }
            }
            eq(head, "05", "case " + i)
        }
        const g = new LineFramer(16, false)
        g.push(bytes("07" + xs(40) + "\n"))
        const y = g.next()
        eq(y !== undefined && y.kind === "too-long" ? y.head.toString("utf-8") : "", "07", "late detection")
    })
    // ---- board budget
    test("framing budget: heap less runtime and buffers, clamped", async function () {
        const bufs = 4 * 4096
        const esp32 = framingBudget({ heap: heapOfArch("esp32"), maxLineBytes: 2048, buffers: bufs })
        eq(esp32.bytes, 16384, "ESP32 defaults: 16 KB")
        eq(esp32.short, 0, "fits")
        eq(framingBudget({ heap: 65536, maxLineBytes: 2048, buffers: 2 * bufs }).bytes, 8192, "bigger buffers, less framing")
        const s2 = framingBudget({ heap: heapOfArch("esp32s2"), maxLineBytes: 2048, buffers: bufs })
        eq(s2.bytes, 4160, "S2: one sealed line")
        eq(s2.short, 4160, "S2 defaults are short: logged at start")
        eq(framingBudget({ heap: 65536, maxLineBytes: 10000, buffers: 0 }).bytes, 20064, "never below one sealed line")
    })
    test("board defaults from the chip's heap: an ESP32-S2's buffers and framing fit its 40 KB; an ESP32 holds 16 unread lines", async function () {
        const budget = function (arch: string): { bytes: number; short: number } {
            const c = resolveConfig({}, boardDefaults(heapOfArch(arch)))
            return framingBudget({ heap: heapOfArch(arch), maxLineBytes: c.maxLineBytes, buffers: c.maxReceivedBytes + c.maxBacklogBytes + c.maxQueuedBytes + c.maxInflightBytes })
        }
        const s2 = resolveConfig({}, boardDefaults(heapOfArch("esp32s2")))
        eq(s2.maxLineBytes, 2048, "S2: the same line limit")
        eq(s2.maxReceivedLines, 8, "S2: half the receive queue")
        eq(s2.maxReceivedBytes + s2.maxBacklogBytes + s2.maxQueuedBytes + s2.maxInflightBytes, 7168, "S2: half the buffers")
        eq(budget("esp32s2").short, 0, "S2: fits")
        eq(budget("esp32s2").bytes, 9216, "S2: 9 KB framing")
        eq(resolveConfig({}, boardDefaults(heapOfArch("esp32"))).maxReceivedLines, 16, "ESP32: 16 lines")
        eq(budget("esp32").bytes, 16384, "ESP32: 16 KB framing")
    })
})
