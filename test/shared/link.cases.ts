import { ClientLink, HeldLine, hold, wantsRead, holdingCount, settle, writeAs, IdReader, ServerLink, LinkError, resolveConfig, nodeDefaults, MAX_ID_BYTES } from "../../src/shared/index.js"
import { blanks, boardCfg, clientDrive, Drive, nodeCfg, serverDrive } from "./drive.js"
import { eq, eqList, hooks, ok, suite, throwsCode } from "./harness.js"
import { hexByte } from "../../src/shared/hex.js"

// A server link whose v1 client has sent a keepalive and been let in.
function v1Server(o: object): Drive<ServerLink> {
    const d = serverDrive(o)
    d.feed("\n")
    d.advance(500)
    ok(d.link.status(), "v1 server link up")
    d.take()
    return d
}

// A client link whose (v1) server has sent its first line.
function v1Client(o: object): Drive<ClientLink> {
    const d = clientDrive(o)
    d.feed("\n")
    ok(d.link.status(), "client up")
    d.take()
    return d
}

// A v1 client link whose first message (00) is already ACKed: toward a v1
// peer nothing else goes until then (fault 1).
function past00(o: object): Drive {
    const d = v1Client(o)
    d.link.write("first", true, true)
    d.advance(0)
    d.feed("00\n")
    d.take()
    d.events = []
    return d
}

function lineCount(s: string): number {
    let n = 0
    for (let i = s.indexOf("\n"); i >= 0; i = s.indexOf("\n", i + 1)) n++
    return n
}

// A payload of `n` ASCII characters (no String.repeat on the device).
function chars(n: number): string {
    let s = "0123456789"
    while (s.length < n) s += s
    return s.slice(0, n)
}

function noExtension(d: Drive, what: string): void {
    const all = d.sent.join("")
    ok(all.indexOf("!") < 0, what + ": a v1 peer was sent an extension line: " + all)
}

export const linkSuite = suite("link", function (test) {
    // ---- handshake
    test("handshake: the client sends its id and the probe, then only keepalives until the first server line", async function () {
        const d = clientDrive({})
        eq(d.take(), "board-1\n" + blanks(10), "id line and probe")
        d.link.write("x", true, true)
        d.advance(499)
        eq(d.take(), "", "nothing before timeout/4")
        d.advance(1)
        eq(d.take(), "\n", "keepalive")
        eq(d.link.status(), false, "not up before a line from the server")
        d.feed("\n")
        eq(d.link.status(), true, "up on the first line")
        eq(d.take(), "00x\n", "message goes once up")
        noExtension(d, "client")
    })
    test("handshake: the server sends only keepalives to a v1 client, and messages 200 ms after its first byte", async function () {
        const d = serverDrive({})
        d.link.write("hi", true, true)
        d.advance(100)
        eq(d.take(), "", "silent after the id")
        d.feed("\n")
        d.advance(399)
        eq(d.take(), "", "still silent")
        d.advance(1)
        eq(d.take(), "\n00hi\n", "keepalive ends the probe; warmup over: message")
        eq(d.count("up"), 1, "up once")
        const up = d.events[0]
        eq(up.type === "up" ? up.peer : "", "v1", "peer kind")
        d.advance(5000)
        noExtension(d, "server")
    })
    test("handshake: warmup holds messages until 200 ms after the v1 client's first byte", async function () {
        const d = serverDrive({ timeout: 400 })
        d.link.write("hi", true, true)
        d.advance(100) // keepalive at 100 (timeout/4) ends the probe
        eq(d.take(), "\n", "keepalive")
        d.feed("\n") // first byte at 100
        d.advance(199)
        ok(d.take().indexOf("hi") < 0, "no message during warmup")
        d.advance(1)
        ok(d.take().indexOf("00hi\n") >= 0, "message at 300")
    })
    test("handshake: a v1 client's first message ends the warm-up at once (it has read this end's line)", async function () {
        const d = serverDrive({})
        d.link.write("hi", true, true)
        d.advance(500)
        eq(d.take(), "\n", "keepalive: the probe is over, warm-up")
        eq(d.link.status(), false, "not up yet")
        d.feed("00a\n")
        eq(d.link.status(), true, "up on the message")
        eqList(d.rx, ["a"], "delivered")
        eq(d.take(), "00\n00hi\n", "its ACK at once, then this end's message")
    })
    test("handshake: a devs-iot probe gets a hello at once, and the client's hello brings the link up", async function () {
        const d = serverDrive({})
        d.feed(blanks(10))
        eq(d.take(), "!hello epoch=srv max=65536\n", "hello, with the line limit")
        eq(d.link.status(), false, "not up before the client's hello")
        d.link.write("m", true, true)
        d.feed("!hello epoch=c1\n")
        eq(d.link.status(), true, "up")
        eq(d.take(), "00m\n", "message")
        const up = d.events[0]
        eq(up.type === "up" ? up.peer : "", "devs-iot", "peer kind")
    })
    test("handshake: a client that answers a hello is up with a devs-iot peer", async function () {
        const d = clientDrive({})
        d.take()
        d.feed("!hello epoch=S\n")
        eq(d.take(), "!hello epoch=cli max=65536\n", "client hello, with the line limit")
        eq(d.link.status(), true, "up")
    })
    test("handshake: a first line no server sends (an SSH or HTTP banner, garbage) closes the socket as a refusal; the link never comes up", async function () {
        const firsts = ["SSH-2.0-OpenSSH_9.6\r\n", "HTTP/1.1 400 Bad Request\r\n", "\x16\x03\x03\x00\n"]
        for (let i = 0; i < firsts.length; i++) {
            const d = clientDrive({})
            d.take()
            d.feed(firsts[i])
            eq(d.link.status(), false, "not up: " + firsts[i])
            eq(d.count("up"), 0, "no up event: " + firsts[i])
            eq(d.count("close"), 1, "socket closed: " + firsts[i])
            eq(d.notices("refused"), 1, "named: " + firsts[i])
        }
    })
    test("handshake: bytes that never make a whole first line (one endless line, a trickle) close the socket 2 x timeout after the first byte", async function () {
        const d = clientDrive({ timeout: 1000 })
        d.take()
        d.feed("AAAA")
        for (let t = 0; t < 1750; t += 250) {
            d.advance(250)
            d.feed("AAAA")
        }
        eq(d.count("close"), 0, "still open before the deadline")
        d.advance(250)
        eq(d.count("close"), 1, "closed at the deadline")
        eq(d.notices("refused"), 1, "named")
        eq(d.link.status(), false, "never up")
    })
    test("handshake: at the smallest line limit the hellos still pass (handshake lines are framed up to 256 bytes)", async function () {
        const c = clientDrive({ maxLineBytes: 16 })
        c.take()
        c.feed("!hello epoch=" + chars(64) + " max=16777216\n")
        eq(c.take(), "!hello epoch=cli max=16\n", "answered as a devs-iot server")
        eq(c.link.status(), true, "up")
        const up = c.events[0]
        eq(up.type === "up" ? up.peer : "", "devs-iot", "peer kind")
        const d = serverDrive({ maxLineBytes: 16 })
        d.feed(blanks(10))
        d.take()
        d.feed("!hello epoch=" + chars(64) + " max=65536\n")
        eq(d.link.status(), true, "the server takes the client's hello")
        d.feed("00" + chars(17) + "\n")
        eq(d.notices("too-long"), 1, "a longer message is still refused")
    })
    test("handshake: nine blank lines and a message are a v1 client", async function () {
        const d = serverDrive({})
        d.feed(blanks(9) + "00a\n")
        eq(d.take(), "00\n", "ACK only, no hello")
        d.advance(3000)
        noExtension(d, "server")
    })
    test("handshake: an over-long line ends the server's probe like any other line (fuzz finding)", async function () {
        const d = serverDrive({ maxLineBytes: 16 })
        d.feed("\n\n\n64vvvvvvvvvvvvvvvvvvvv\n" + blanks(10))
        d.advance(3000)
        noExtension(d, "server")
        const c = clientDrive({ maxLineBytes: 16 })
        c.take()
        c.feed("00vvvvvvvvvvvvvvvvvvvv")
        eq(c.link.status(), false, "a client is not up on an unfinished over-long line")
        eq(c.take(), "", "and sends nothing")
        c.feed("\n\n")
        eq(c.link.status(), true, "up on the next complete line")
    })
    test("handshake: a devs-iot client that never sends its hello is dropped after timeout", async function () {
        const d = serverDrive({})
        d.feed(blanks(10))
        for (let t = 0; t < 4; t++) {
            d.advance(500)
            d.feed("\n")
        }
        eq(d.count("close"), 1, "closed")
        eq(d.notices("no-hello"), 1, "notice")
    })

    // ---- keepalive and outage
    test("keepalive: a line goes out whenever nothing was written for timeout/4", async function () {
        const d = v1Client({})
        d.advance(1000)
        d.feed("\n")
        d.advance(1000)
        eq(d.take(), "\n\n\n\n", "four keepalives in 2 s")
        d.link.write("a", false, false)
        d.advance(0)
        d.advance(499)
        eq(d.take(), "00a\n", "a message resets the keepalive clock")
    })
    test("outage: 2 x timeout allowed before the first line, timeout after", async function () {
        const d = clientDrive({})
        d.advance(3999)
        eq(d.count("close"), 0, "not yet")
        d.advance(1)
        eq(d.count("close"), 1, "closed at 2 x timeout")
        const e = v1Client({})
        e.advance(1999)
        eq(e.count("close"), 0, "not yet")
        e.advance(1)
        eq(e.count("close"), 1, "closed at timeout")
        eq(e.count("down"), 1, "status down")
        eq(e.link.status(), false, "status false")
    })
    test("outage: keepalives from the peer keep the link up", async function () {
        const d = v1Client({})
        for (let i = 0; i < 40; i++) {
            d.advance(500)
            d.feed("\n")
        }
        eq(d.count("close"), 0, "no outage in 20 s of keepalives")
    })
    test("outage: a paused reader is not an outage", async function () {
        const d = v1Server({ maxReceivedLines: 2, maxBacklogBytes: 0 })
        d.reads = false
        d.feed("01a\n02b\n03c\n")
        eq(wantsRead(d.link), false, "reading paused")
        d.advance(20000)
        eq(d.count("close"), 0, "no outage while paused")
        d.reads = true
        d.pump()
        d.pump()
        eqList(d.rx, ["a", "b", "c"], "all delivered")
        eq(wantsRead(d.link), true, "reading again")
    })

    // ---- receiving
    test("ACK: a message is ACKed once kept; a duplicate is ACKed and not delivered", async function () {
        const d = v1Server({})
        d.feed("05a\n")
        eqList(d.rx, ["a"], "delivered")
        eq(d.take(), "05\n", "ACK")
        d.feed("05a\n")
        eqList(d.rx, ["a"], "not delivered twice")
        eq(d.take(), "05\n", "duplicate ACKed")
        eq(d.link.stats.duplicates, 1, "counted")
    })
    test("ACK on read: a kept line is ACKed once the application has read it and released it", async function () {
        const d = v1Server({})
        d.reads = false
        d.feed("05a\n06b\n")
        eq(d.take(), "", "nothing ACKed on receipt")
        eq(d.link.read(d.now), "a", "a read")
        d.link.release()
        d.pump()
        eq(d.take(), "05\n", "a ACKed once released; b still unread")
        d.link.read(d.now)
        d.advance(1)
        eq(d.take(), "", "a read line waits for release too")
        d.link.release()
        d.pump()
        eq(d.take(), "06\n", "b ACKed")
    })
    test("ACK on read: an unread line is ACKed ackDelay ms after it arrived (two ends that write before reading do not deadlock)", async function () {
        const d = v1Server({ ackDelay: 100 })
        d.reads = false
        d.feed("05a\n")
        d.advance(50)
        d.feed("06b\n")
        d.advance(49)
        eq(d.take(), "", "not before 100 ms")
        d.advance(1)
        eq(d.take(), "05\n", "a at 100 ms")
        d.advance(50)
        eq(d.take(), "06\n", "b at 100 ms after its own arrival")
        d.reads = true
        d.pump()
        eqList(d.rx, ["a", "b"], "both delivered")
        eq(d.take(), "", "not ACKed again when read")
    })
    test("ACK on read: while the application reads, unread lines wait for their read, not for ackDelay", async function () {
        const d = v1Server({ ackDelay: 100 })
        d.reads = false
        d.feed("05a\n06b\n07c\n")
        const ids = ["05", "06", "07"]
        for (let i = 0; i < 3; i++) {
            d.advance(90)
            d.link.read(d.now)
            d.link.release()
            d.pump()
            eq(d.take(), ids[i] + "\n", "ACKed as it was read, not 100 ms after it arrived")
        }
        d.feed("08d\n")
        d.advance(99)
        eq(d.take(), "", "not before 100 ms after the last read")
        d.advance(1)
        eq(d.take(), "08\n", "ACKed once the application has not read for 100 ms")
    })
    test("ACK on read: a resend of a line not yet read is neither delivered nor ACKed before the read", async function () {
        const d = v1Server({})
        d.reads = false
        d.feed("05a\n05a\n")
        eq(d.take(), "", "no ACK for the resend either")
        eq(d.link.stats.duplicates, 1, "a duplicate")
        d.reads = true
        d.pump()
        eqList(d.rx, ["a"], "once")
        eq(d.take(), "05\n", "one ACK once read")
        d.feed("05a\n")
        eq(d.take(), "05\n", "a later resend is ACKed at once")
    })
    test("ACK on read: an ACK owed across a reconnect goes on the new socket; a restarted peer is owed none", async function () {
        const d = serverDrive({})
        d.reads = false
        d.feed(blanks(10) + "!hello epoch=A\n01a\n")
        d.take()
        d.link.socketClosed(d.now, "cut")
        d.link.open(d.now)
        d.feed(blanks(10) + "!hello epoch=A\n01a\n02b\n")
        ok(d.take().indexOf("01\n") < 0, "the resend of a is not ACKed: a is unread")
        d.link.read(d.now)
        d.link.release()
        d.pump()
        eq(d.take(), "01\n", "a's ACK on the new socket")
        d.link.socketClosed(d.now, "cut")
        d.link.open(d.now)
        d.feed(blanks(10) + "!hello epoch=B\n")
        d.take()
        d.link.read(d.now)
        d.link.release()
        d.advance(200)
        ok(d.take().indexOf("02\n") < 0, "no ACK of b to the restarted peer")
    })
    test("held lines (relay): ACKed only at settle, never by ackDelay, in the order settled", async function () {
        const d = v1Server({ ackDelay: 100 })
        d.reads = false
        d.feed("05a\n06b\n")
        const a = hold(d.link, d.now) as HeldLine
        const b = hold(d.link, d.now) as HeldLine
        ok(a !== undefined && b !== undefined, "two lines held")
        eq(a.payload + b.payload, "ab", "payloads")
        for (let i = 0; i < 10; i++) {
            d.advance(500)
            d.feed("\n") // the peer's keepalives: the link stays up
        }
        const out = d.take()
        ok(out.indexOf("05") < 0 && out.indexOf("06") < 0, "no ACK while held, long after ackDelay")
        eq(holdingCount(d.link), 2, "both held")
        settle(d.link, b)
        d.pump()
        eq(d.take(), "06\n", "b ACKed when settled")
        d.feed("05a\n")
        eq(d.take(), "", "a resend of a held line is neither delivered nor ACKed")
        settle(d.link, a)
        settle(d.link, a)
        d.pump()
        eq(d.take(), "05\n", "a ACKed once, however often settled")
        eq(holdingCount(d.link), 0, "none held")
    })
    test("chosen message ids (relay): outside 1..255 a write is refused (ETYPE)", async function () {
        const d = v1Server({})
        const bad = [0, 256, 1.5]
        for (let i = 0; i < bad.length; i++) {
            let code = ""
            try {
                writeAs(d.link, "x", true, true, bad[i])
            } catch (e) {
                code = (e as LinkError).code
            }
            eq(code, "ETYPE", "id " + bad[i] + " cannot be chosen")
        }
        eq(writeAs(d.link, "x", true, true, 7) > 0, true, "7 can")
    })
    test("held lines (relay): a line held across a restart of the peer is never ACKed to its new life", async function () {
        const d = serverDrive({})
        d.reads = false
        d.feed(blanks(10) + "!hello epoch=A\n01a\n")
        d.take()
        const a = hold(d.link, d.now) as HeldLine
        d.link.socketClosed(d.now, "cut")
        d.link.open(d.now)
        d.feed(blanks(10) + "!hello epoch=B\n")
        d.take()
        settle(d.link, a)
        d.advance(200)
        ok(d.take().indexOf("01\n") < 0, "no ACK of a to the restarted peer")
        eq(holdingCount(d.link), 0, "a no longer held")
    })
    test("ACK on read: ackDelay 0 ACKs on receipt, as v1 does", async function () {
        const d = v1Server({ ackDelay: 0 })
        d.reads = false
        d.feed("05a\n")
        eq(d.take(), "05\n", "ACK at once")
    })
    test("ACK on read, v1 client: lines kept in the warm-up keep their ACK when the link comes up", async function () {
        const d = serverDrive({ warmup: 200, ackDelay: 300 })
        d.reads = false
        d.feed("\n05a\n06b\n") // messages before this end wrote a line: warm-up from the first byte
        eq(d.link.status(), false, "warm-up")
        d.advance(200)
        eq(d.link.status(), true, "up")
        ok(d.take().indexOf("05") < 0, "nothing ACKed before it is read")
        d.link.read(d.now)
        d.link.release()
        d.pump()
        eq(d.take(), "05\n", "a: ACKed once read, on the socket it came on")
        d.advance(299)
        eq(d.take(), "", "b, unread: not while the application has read within ackDelay")
        d.advance(1)
        eq(d.take(), "06\n", "b: ACKed once the application has not read for ackDelay")
    })
    test("ACK on read: an ACK due while no socket is open goes on the next one once the peer proves the same epoch", async function () {
        const d = serverDrive({})
        d.reads = false
        d.feed(blanks(10) + "!hello epoch=A\n01a\n")
        d.take()
        d.link.socketClosed(d.now, "cut")
        eq(d.link.read(d.now), "a", "read in the outage")
        d.link.release()
        d.link.open(d.now)
        d.feed(blanks(10))
        ok(d.take().indexOf("01\n") < 0, "not before the peer's hello")
        d.feed("!hello epoch=A\n")
        eq(d.take(), "01\n", "sent once the same epoch is proven")
    })
    test("ACK on read: an ACK owed from an earlier socket is dropped toward a v1 peer; its resend is ACKed as a duplicate", async function () {
        const d = v1Server({})
        d.reads = false
        d.feed("05a\n")
        d.link.socketClosed(d.now, "cut")
        d.link.read(d.now)
        d.link.release()
        d.link.open(d.now)
        d.feed("\n")
        d.advance(500)
        ok(d.link.status(), "up again")
        ok(d.take().indexOf("05\n") < 0, "no ACK from an earlier socket to a peer that cannot prove its epoch")
        d.feed("05a\n")
        eq(d.take(), "05\n", "the resend: ACKed at once")
        eq(d.link.stats.duplicates, 1, "and not delivered again")
    })
    test("fault 1, v1 peer: a 00 repeated on one socket is a duplicate; a 00 opening a socket is a restart", async function () {
        const d = v1Server({})
        d.feed("00a\n")
        d.feed("00a\n")
        eqList(d.rx, ["a"], "resent 00 on the same socket dropped")
        d.link.socketClosed(d.now, "cut")
        d.link.open(d.now)
        d.feed("\n")
        d.advance(500)
        d.feed("00b\n")
        eqList(d.rx, ["a", "b"], "00 that opens a socket: a restarted peer")
    })
    test("fault 1, devs-iot peer: a resent 00 stays a duplicate across sockets; a new epoch is a restart", async function () {
        const d = serverDrive({})
        d.feed(blanks(10) + "!hello epoch=A\n00a\n")
        d.link.socketClosed(d.now, "cut")
        d.link.open(d.now)
        d.feed(blanks(10) + "!hello epoch=A\n00a\n01b\n")
        eqList(d.rx, ["a", "b"], "resend of 00 on a new socket is a duplicate")
        d.link.socketClosed(d.now, "cut")
        d.link.open(d.now)
        d.feed(blanks(10) + "!hello epoch=B\n00c\n")
        eqList(d.rx, ["a", "b", "c"], "new epoch: 00 delivered")
    })
    test("fault 2: a line cut by an outage is not joined to the next socket's bytes", async function () {
        const d = v1Server({})
        d.feed("05hal")
        d.link.socketClosed(d.now, "cut")
        d.link.open(d.now)
        d.feed("\n")
        d.advance(500)
        d.feed("06full\n")
        eqList(d.rx, ["full"], "only the whole line")
        eq(d.link.stats.badLines, 0, "no garbage")
    })
    test("fault 3: a UTF-8 character split across reads arrives whole", async function () {
        const d = v1Server({})
        const b = Buffer.from("07\u20ac\n")
        d.link.receive(b.slice(0, 3), d.now)
        d.pump()
        d.link.receive(b.slice(3), d.now)
        d.pump()
        eqList(d.rx, ["\u20ac"], "delivered")
    })
    test("fault 4: bad lines are reported and dropped; the link goes on", async function () {
        const d = v1Server({})
        d.feed("zz\nzzhello\n\u0001\nq\n05ok\n")
        eqList(d.rx, ["ok"], "good line delivered")
        eq(d.take(), "05\n", "and ACKed")
        eq(d.notices("bad-line"), 4, "four bad lines reported")
        d.advance(500)
        eq(d.take(), "\n", "keepalives go on")
    })
    test("fault 5: an un-ACKed non-qos message does not block later wait writes", async function () {
        const d = past00({})
        d.link.write("n", false, false)
        d.link.write("q", true, true)
        d.advance(0)
        eq(d.take(), "01n\n02q\n", "qos write not held by the non-qos one")
        eq(d.count("written"), 1, "non-qos complete once on the wire")
    })
    test("gaps: forgotten non-qos ids hold the window until a later ACK; the newest goes again as a probe", async function () {
        const d = past00({ window: 2 })
        d.link.write("a", false, false)
        d.link.write("b", false, false)
        d.link.write("c", true, true)
        d.advance(0)
        eq(d.take(), "01a\n02b\n", "window of 2 full")
        eq(d.count("written"), 2, "both non-qos writes complete on the wire")
        d.advance(1000)
        d.feed("\n")
        d.advance(1000)
        const t = d.take()
        ok(t.indexOf("02b\n") >= 0, "the newest forgotten line sent again: " + JSON.stringify(t))
        ok(t.indexOf("03c\n") < 0 && t.indexOf("01a") < 0, "nothing else: " + JSON.stringify(t))
        d.feed("02\n")
        eq(d.take(), "03c\n", "the probe's ACK opens the window")
        eq(d.count("written"), 2, "the probe completes no write again")
    })
    test("gaps: an ACK for a later id frees the forgotten ids before it", async function () {
        const d = past00({ window: 3 })
        d.link.write("a", false, false)
        d.link.write("q", true, false)
        d.link.write("c", true, true)
        d.advance(0)
        eq(d.take(), "01a\n02q\n", "a, q; c waits for q")
        d.advance(1000)
        d.feed("\n")
        d.advance(1000)
        ok(d.take().indexOf("02q\n") >= 0, "q resent after timeout")
        d.feed("02\n")
        eq(d.take(), "03c\n", "01 forgotten and 02 ACKed: c goes")
    })
    test("fault 6, board: a full receive queue holds a bounded backlog un-ACKed, and delivers it once read", async function () {
        const d = new Drive(new ServerLink(boardCfg({ maxReceivedLines: 2, maxBacklogBytes: 64, ackDelay: 0 }), "srv")).open()
        d.feed("\n")
        d.advance(500)
        d.take()
        d.reads = false
        d.feed("01a\n02b\n03c\n04d\n")
        eq(d.take(), "01\n02\n", "kept lines ACKed; the rest waits un-ACKed")
        eq(d.link.stats.dropped, 0, "nothing dropped within the backlog")
        d.reads = true
        d.pump()
        d.pump()
        eq(d.take(), "03\n04\n", "ACKed once read")
        eqList(d.rx, ["a", "b", "c", "d"], "in order")
    })
    test("full queue: ACKs behind waiting messages are still handled (no deadlock of two echoing ends)", async function () {
        const d = v1Client({ maxReceivedLines: 1, ackDelay: 0 })
        d.reads = false
        d.link.write("mine", true, true)
        d.advance(0)
        eq(d.take(), "00mine\n", "sent")
        d.feed("05a\n06b\n00\n") // queue holds a; b waits; then the ACK of our line
        eq(d.count("written"), 1, "our write completed although b is waiting")
        eq(d.take(), "05\n", "b not ACKed yet")
        d.reads = true
        d.pump()
        d.pump()
        eqList(d.rx, ["a", "b"], "both delivered")
        eq(d.take(), "06\n", "b ACKed once kept")
    })
    test("fault 6, board: past the backlog a message is dropped without ACK; the resend is delivered once", async function () {
        const d = new Drive(new ServerLink(boardCfg({ maxReceivedLines: 2, maxBacklogBytes: 0, ackDelay: 0 }), "srv")).open()
        d.feed("\n")
        d.advance(500)
        d.take()
        d.reads = false
        d.feed("01a\n02b\n03c\n")
        d.feed("\n") // more bytes arrive while full: over the backlog
        eq(d.take(), "01\n02\n", "only kept lines ACKed")
        eq(d.link.stats.dropped, 1, "drop counted")
        d.reads = true
        d.pump()
        d.feed("03c\n")
        eq(d.take(), "03\n", "resend ACKed")
        eqList(d.rx, ["a", "b", "c"], "each once")
    })
    test("fault 6, Node: a full receive queue and backlog stop reading; nothing is ACKed until read", async function () {
        const d = v1Server({ maxReceivedLines: 2, maxBacklogBytes: 0, ackDelay: 0 })
        d.reads = false
        d.feed("01a\n02b\n03c\n04d\n")
        eq(d.take(), "01\n02\n", "two kept and ACKed")
        eq(wantsRead(d.link), false, "paused")
        d.reads = true
        d.pump()
        d.pump()
        eq(d.take(), "03\n04\n", "rest ACKed once read")
        eqList(d.rx, ["a", "b", "c", "d"], "in order, none lost")
    })
    test("too long: an over-long message from a v1 peer is dropped but ACKed (never resent for ever), with a notice; the next is delivered", async function () {
        const d = v1Server({ maxLineBytes: 16 })
        d.feed("05xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n06ok\n")
        eqList(d.rx, ["ok"], "next line")
        eq(d.take(), "05\n06\n", "both ACKed")
        eq(d.notices("too-long"), 1, "notice")
    })

    // ---- sending
    test("write: refuses an empty line, an inner newline, an over-long line, a non-string", async function () {
        const d = v1Client({ maxLineBytes: 16 })
        throwsCode(function () { d.link.write("", true, true) }, "EEMPTY", "empty")
        throwsCode(function () { d.link.write("\n", true, true) }, "EEMPTY", "lone newline")
        throwsCode(function () { d.link.write("a\nb", true, true) }, "ENEWLINE", "inner newline")
        throwsCode(function () { d.link.write("01234567890123456", true, true) }, "ETOOLONG", "17 bytes")
        throwsCode(function () { d.link.write("\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9", true, true) }, "ETOOLONG", "18 UTF-8 bytes")
        throwsCode(function () { d.link.write(5 as unknown as string, true, true) }, "ETYPE", "number")
        d.link.write("x\n", true, true)
        d.advance(0)
        eq(d.take(), "00x\n", "one trailing newline is dropped")
    })
    test("write: the queue for a down link is capped; beyond it write fails with EQUEUEFULL", async function () {
        const d = clientDrive({ maxQueuedLines: 2 })
        d.link.write("a", true, true)
        d.link.write("b", true, true)
        throwsCode(function () { d.link.write("c", true, true) }, "EQUEUEFULL", "third write")
    })
    test("wait: one qos message in flight at a time, in order", async function () {
        const d = v1Client({})
        d.link.write("a", true, true)
        d.link.write("b", true, true)
        d.link.write("c", true, true)
        d.advance(0)
        eq(d.take(), "00a\n", "only the first")
        d.feed("00\n")
        eq(d.take(), "01b\n", "second after the first ACK")
        d.feed("01\n")
        eq(d.take(), "02c\n", "third")
        d.feed("02\n")
        eq(d.count("written"), 3, "all complete")
    })
    test("fault 1 toward a v1 peer: nothing after 00 is sent until 00 is ACKed", async function () {
        const d = v1Client({})
        d.link.write("a", true, false)
        d.link.write("b", true, false)
        d.advance(0)
        eq(d.take(), "00a\n", "only 00: a resent 00 would clear a v1 receiver's whole set")
        d.feed("00\n")
        eq(d.take(), "01b\n", "the rest once 00 is ACKed")
    })
    test("keepalive: no deadline in the past while a line waits for the socket", async function () {
        const d = v1Client({})
        d.link.write("a", true, false)
        d.advance(600) // not flushed by the test: the socket is 'blocked'
        const t = d.link.pollTimeout()
        ok(t < 0 || t > d.now - 600, "deadline " + t + " is not stuck in the past")
    })
    test("window: wait=false sends at most `window` un-ACKed ids", async function () {
        const d = v1Client({ window: 4 })
        d.link.write("m", true, true)
        d.advance(0)
        d.feed("00\n") // 00 ACKed: a v1 peer gets the rest
        d.take()
        for (let i = 0; i < 10; i++) d.link.write("m" + i, true, false)
        d.advance(0)
        eq(d.take(), "01m0\n02m1\n03m2\n04m3\n", "four in flight")
        d.feed("01\n")
        eq(d.take(), "05m4\n", "one more per ACK")
        d.feed("03\n")
        eq(d.take(), "02m1\n", "02 resent at once (fast resend); no new id: the window counts from the oldest un-ACKed id")
    })
    test("round trip: an ACK times its message from its send; an ACK of a message sent twice on the socket is no sample", async function () {
        const d = past00({})
        const before = d.link.stats.roundTrips
        d.link.write("a", true, true)
        d.advance(0)
        eq(d.take(), "01a\n", "sent")
        d.advance(30)
        d.feed("01\n")
        eq(d.link.stats.roundTrips, before + 1, "one sample")
        eq(d.link.stats.roundTrip, 30, "from send to ACK")
        d.link.write("b", true, true)
        d.advance(0)
        eq(d.take(), "02b\n", "sent")
        d.advance(1000)
        d.feed("\n") // the peer is alive; 02 is only not ACKed
        d.advance(1000)
        eq(d.take().indexOf("02b\n") >= 0, true, "resent after timeout")
        d.advance(10)
        d.feed("02\n")
        eq(d.link.stats.roundTrips, before + 1, "no sample: the ACK may answer either send")
        eq(d.link.stats.roundTrip, 30, "last sample kept")
    })
    test("window: un-ACKed bytes are capped too", async function () {
        const d = past00({ maxInflightBytes: 20 })
        d.link.write("0123456789", true, false)
        d.link.write("abcdefghij", true, false)
        d.link.write("ABCDEFGHIJ", true, false)
        d.advance(0)
        eq(d.take(), "010123456789\n02abcdefghij\n", "20 bytes in flight")
        d.feed("01\n")
        eq(d.take(), "03ABCDEFGHIJ\n", "room again")
    })
    test("window toward a v1 peer: at most 20 un-ACKed (the original client's receive queue), whatever `window` says", async function () {
        const d = past00({ window: 64 })
        for (let i = 0; i < 30; i++) d.link.write("m" + i, true, false)
        d.advance(0)
        eq(lineCount(d.take()), 20, "20 in flight")
        d.feed("01\n")
        eq(d.take(), "15m20\n", "one more per ACK")
        const c = clientDrive({ window: 64 })
        c.take()
        c.feed("!hello epoch=S\n")
        c.take()
        for (let i = 0; i < 30; i++) c.link.write("m" + i, true, false)
        c.advance(0)
        eq(lineCount(c.take()), 30, "a devs-iot peer gets the whole window")
    })
    test("window toward the original server: at most 3072 payload bytes un-ACKed (it takes each read of 4096 bytes on its own); a longer line alone", async function () {
        const d = past00({})
        const p = chars(200)
        for (let i = 0; i < 20; i++) d.link.write(p, true, false)
        d.link.write(chars(4000), true, false)
        d.advance(0)
        eq(lineCount(d.take()), 15, "15 lines of 200 bytes: 3000 bytes")
        await hooks.pause()
        d.feed("01\n")
        eq(lineCount(d.take()), 1, "one more per ACK")
        for (let i = 2; i <= 16; i++) {
            d.feed(hexByte(i) + "\n")
            await hooks.pause()
        }
        eq(lineCount(d.take()), 4, "the last 4 lines of 200 bytes; the long one waits while any is un-ACKed")
        await hooks.pause()
        for (let i = 17; i <= 20; i++) {
            d.feed(hexByte(i) + "\n")
            await hooks.pause()
        }
        const long = d.take()
        eq(lineCount(long), 1, "the 4000-byte line once the others are ACKed")
        eq(long.length, 4003, "alone")
        await hooks.pause()
        const v = v1Server({})
        v.link.write("first", true, true)
        v.advance(0)
        v.feed("00\n")
        v.take()
        for (let i = 0; i < 20; i++) v.link.write(p, true, false)
        v.advance(0)
        eq(lineCount(v.take()), 20, "toward a v1 client only the window counts")
    })
    test("window toward the original server: a longer line goes alone also when a lost non-qos id still holds its place", async function () {
        const d = past00({})
        d.link.write("lost", false, false)
        d.advance(0)
        eq(d.take(), "01lost\n", "sent, never ACKed")
        d.advance(1000)
        d.feed("\n")
        d.advance(1000)
        d.feed("\n") // 01 is forgotten now; its id keeps its place
        d.take()
        d.link.write(chars(4000), true, true)
        d.advance(0)
        const long = d.take()
        eq(lineCount(long), 1, "the 4000-byte line")
        eq(long.length, 4003, "alone")
    })
    test("window: lines sent to a devs-iot server go to a v1 server on the next socket at most 3072 bytes at a time", async function () {
        const d = clientDrive({})
        d.take()
        d.feed("!hello epoch=S\n")
        const p = chars(500)
        for (let i = 0; i < 12; i++) d.link.write(p, true, false)
        d.advance(0)
        d.feed("00\n")
        eq(lineCount(d.take()), 12 + 1, "a devs-iot server gets them all (and the hello)")
        await hooks.pause()
        d.link.socketClosed(d.now, "cut")
        d.link.open(d.now)
        d.pump()
        d.take()
        d.feed("\n") // a v1 server's first line
        eq(lineCount(d.take()), 6, "6 of the 11 un-ACKed: 3000 bytes")
        await hooks.pause()
        d.feed("01\n")
        eq(lineCount(d.take()), 1, "one more per ACK")
    })
    test("window: lines sent to a devs-iot peer go again to a v1 peer on the next socket, 20 at a time", async function () {
        const d = clientDrive({ window: 64 })
        d.take()
        d.feed("!hello epoch=S\n")
        for (let i = 0; i < 30; i++) d.link.write("m" + i, true, false)
        d.advance(0)
        d.feed("00\n")
        d.take()
        d.link.socketClosed(d.now, "cut")
        d.link.open(d.now)
        d.pump()
        d.take()
        d.feed("\n") // a v1 server's first line
        eq(lineCount(d.take()), 20, "20 of the 29 un-ACKed")
        await hooks.pause()
        d.feed("01\n")
        eq(d.take(), "15m21\n", "one more per ACK")
        await hooks.pause()
        d.advance(500)
        eq(d.take(), "\n", "lines held by the window do not stop keepalives")
    })
    test("resend: a qos message without ACK goes again after timeout, same id", async function () {
        const d = v1Client({})
        d.link.write("a", true, true)
        d.advance(0)
        eq(d.take(), "00a\n", "sent")
        d.advance(1999)
        eq(d.take().indexOf("00a"), -1, "not yet")
        d.feed("\n")
        d.advance(1)
        ok(d.take().indexOf("00a\n") >= 0, "resent")
        d.feed("00\n")
        d.advance(1000)
        d.feed("\n")
        d.advance(1500)
        eq(d.take().indexOf("00a"), -1, "no resend after the ACK")
        eq(d.count("written"), 1, "written once")
    })
    test("fast resend: an ACK for a later message resends an earlier un-ACKed one at once (the peer dropped it)", async function () {
        const d = past00({})
        d.link.write("a", true, false)
        d.link.write("b", true, false)
        d.link.write("c", true, false)
        d.advance(0)
        eq(d.take(), "01a\n02b\n03c\n", "three in flight")
        d.feed("01\n03\n")
        eq(d.take(), "02b\n", "b resent without waiting for timeout")
        eq(d.link.stats.resent, 1, "counted")
        d.feed("02\n")
        eq(d.count("written"), 3, "all written")
    })
    test("fast resend: a late ACK for a line resent after timeout resends nothing sent in between (a slow reader)", async function () {
        const d = past00({ timeout: 2000 })
        d.link.write("a", true, false)
        d.advance(0)
        d.advance(400)
        d.feed("\n")
        d.link.write("b", true, false)
        d.link.write("c", true, false)
        d.advance(0)
        eq(d.take(), "01a\n02b\n03c\n", "three in flight")
        d.advance(1000)
        d.feed("\n")
        d.advance(600)
        ok(d.take().indexOf("01a\n") >= 0, "a resent after timeout")
        d.feed("01\n") // the ACK of a's first transmission, late
        eq(d.take(), "", "b and c not taken for dropped")
        d.feed("02\n03\n")
        eq(d.count("written"), 3, "all written")
    })
    test("resend: un-ACKed qos messages go again first after a reconnect; non-qos do not", async function () {
        const d = past00({})
        d.link.write("q", true, false)
        d.link.write("n", false, false)
        d.advance(0)
        eq(d.take(), "01q\n02n\n", "sent")
        d.link.socketClosed(d.now, "cut")
        d.link.write("later", true, false)
        d.link.open(d.now)
        d.pump()
        d.take()
        d.feed("\n")
        eq(d.take(), "01q\n03later\n", "resend, then new")
    })
    test("a non-qos write not yet on the wire when its socket dies goes on the next socket; close() fails one that never went", async function () {
        const d = past00({ maxWriteBytes: 64 })
        let x = "" // one line fills a write
        for (let i = 0; i < 70; i++) x += "x"
        const t1 = d.link.write(x + "1", false, false)
        const t2 = d.link.write(x + "2", false, false)
        const out = d.link.pollTransmit(d.now) // one flush step: the first line fills the write
        eq(out !== undefined && out.toString().indexOf(x + "1") >= 0 && out.toString().indexOf(x + "2") < 0, true, "only the first went")
        d.link.socketClosed(d.now, "cut")
        d.pump()
        d.link.open(d.now)
        d.pump()
        d.feed("\n")
        eq(d.take().indexOf(x + "2") >= 0, true, "the second goes on the next socket")
        const written: number[] = []
        for (let i = 0; i < d.events.length; i++) {
            const e = d.events[i]
            if (e.type === "written") written.push(e.ticket)
        }
        eqList(written, [t1, t2], "both writes complete")
        const t3 = d.link.write(x + "3", false, false)
        const t4 = d.link.write(x + "4", false, false)
        d.link.pollTransmit(d.now)
        d.events = []
        d.link.close(d.now)
        d.pump()
        const failed: number[] = []
        for (let i = 0; i < d.events.length; i++) {
            const e = d.events[i]
            if (e.type === "failed") failed.push(e.ticket)
        }
        eqList(failed, [t4], "the one that never went fails at close (" + t3 + " went)")
    })
    test("close: writes not complete fail with ECLOSED; later writes throw", async function () {
        const d = v1Client({})
        d.link.write("a", true, true)
        d.link.write("b", true, true)
        d.advance(0)
        d.link.close(d.now)
        d.pump()
        eq(d.count("failed"), 2, "both failed")
        const f = d.events[d.events.length - 1]
        eq(f.type === "failed" ? f.error.code : "", "ECLOSED", "code")
        throwsCode(function () { d.link.write("c", true, true) }, "ECLOSED", "after close")
    })

    test("fault 9: a newcomer takes over only a closed socket or one silent for more than timeout/2", async function () {
        const d = v1Server({})
        d.feed("\n")
        eq(d.link.mayTakeOver(d.now), false, "live socket")
        d.advance(1000)
        eq(d.link.mayTakeOver(d.now), false, "silent for exactly timeout/2")
        d.advance(1)
        eq(d.link.mayTakeOver(d.now), true, "silent for longer")
        d.feed("\n")
        eq(d.link.mayTakeOver(d.now), false, "alive again")
        d.link.socketClosed(d.now, "FIN")
        eq(d.link.mayTakeOver(d.now), true, "closed")
    })

    // ---- the server's id line, and configuration
    test("handshake: the id line and the bytes after it", async function () {
        const r = new IdReader(MAX_ID_BYTES)
        r.push(Buffer.from("dev"))
        eq(r.next(), undefined, "partial id")
        r.push(Buffer.from("-1\n\n\n01"))
        const x = r.next()
        eq(x && x.kind === "id" ? x.id : "", "dev-1", "id")
        let rest = ""
        if (x && x.kind === "id") for (let i = 0; i < x.rest.length; i++) rest += x.rest[i].toString("utf-8")
        eq(rest, "\n\n01", "rest for the link")
    })
    test("handshake: an empty, over-long or control-character id is refused", async function () {
        const cases = ["\n", "a\u0001b\n"]
        for (let i = 0; i < cases.length; i++) {
            const r = new IdReader(MAX_ID_BYTES)
            r.push(Buffer.from(cases[i]))
            const x = r.next()
            eq(x ? x.kind : "", "bad", "refused: " + i)
        }
        const r = new IdReader(8)
        r.push(Buffer.from("0123456789\n"))
        const x = r.next()
        eq(x ? x.kind : "", "bad", "too long")
    })
    test("config: a bad value is refused with the setting's name", async function () {
        const bad: object[] = [{ timeout: -1 }, { timeout: 2.5 }, { window: 121 }, { window: 0 }, { maxLineBytes: "big" }, { onFull: "x" }]
        const names = ["timeout", "timeout", "window", "window", "maxLineBytes", "onFull"]
        for (let i = 0; i < bad.length; i++) {
            let msg = ""
            try {
                resolveConfig(bad[i], nodeDefaults())
            } catch (e) {
                msg = (e as LinkError).message
                eq((e as LinkError).code, "ECONFIG", "code")
            }
            ok(msg.indexOf(names[i]) === 0, "message names " + names[i] + ": " + msg)
        }
        eq(nodeCfg({ timeout: 1000 }).timeout, 1000, "good value kept")
        let m = ""
        try {
            nodeCfg({ timeout: 2000, ackDelay: 501 })
        } catch (e) {
            m = (e as LinkError).message
        }
        eq(m, "ackDelay (501) must be at most timeout/4 (500)", "ackDelay above timeout/4")
        eq(nodeCfg({ timeout: 200 }).ackDelay, 50, "the default ackDelay shrinks with a short timeout")
        eq(nodeCfg({}).ackDelay, 100, "default ackDelay")
    })
})
