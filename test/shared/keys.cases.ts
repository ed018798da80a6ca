// Keys that mean what they say: refusals a devs-iot client reads (and a v1
// peer never sees), two keys for an id during a rotation, an id that must
// encrypt, a server that ends a session it no longer admits, and the back-off
// of a client that is refused again and again. Run on Node and in the
// DeviceScript VM.

import { Backoff, challengeLine, helloLine, kcvOf, rekeyLine, deriveSession, ClientLink, confirmKey, ServerLink, linkAuth, setAuth, parseRefusal, ProbeRefusal, proofLine, refusalLine, ServerAuth, Session, Transcript } from "../../src/shared/index.js"
import { crypto, eq, ok, suite } from "./harness.js"
import { blanks, Drive, nodeCfg, serverDrive } from "./drive.js"

function fill(n: number, v: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = v
    return b
}

// Made when a case runs: the VM's 64 KB heap is shared by every suite.
function key(): Buffer {
    return fill(32, 0x11)
}
function nextKey(): Buffer {
    return fill(32, 0x33)
}
function otherKey(): Buffer {
    return fill(32, 0x22)
}
const NS = "00112233445566778899aabbccddeeff"

function noticeText(d: Drive, code: string): string {
    for (let i = 0; i < d.events.length; i++) {
        const e = d.events[i]
        if (e.type === "notice" && e.code === code) return e.detail
    }
    return ""
}

// A client Link with `key` (or none), its id line and probe taken.
function client(key: Buffer | undefined, encrypt: boolean): Drive<ClientLink> {
    const d = new Drive(new ClientLink(nodeCfg({}), "ec1", "board-1"))
    if (key !== undefined) setAuth(d.link, linkAuth(crypto(), key, encrypt))
    d.open()
    d.take()
    return d
}

// Runs a keyed client against a ServerAuth: the outcome kind and key index,
// and the client Drive after the server's proof.
function handshake(clientKey: Buffer, serverKeys: Buffer[], mustEncrypt: boolean): { outcome: string; d: Drive<ClientLink>; session: Session | undefined } {
    const d = client(clientKey, false)
    const a = new ServerAuth(crypto(), "board-1", serverKeys, "es1", 2000, false, 0, mustEncrypt)
    a.push(Buffer.from(blanks(10)))
    a.step(0)
    d.feed((a.pollTransmit() as Buffer).toString("utf-8"))
    a.push(Buffer.from(d.take()))
    const o = a.step(1)
    const back = a.pollTransmit()
    if (back !== undefined) d.feed(back.toString("utf-8"))
    if (o === undefined) return { outcome: "none", d: d, session: undefined }
    if (o.kind === "auth") return { outcome: "auth " + o.keyIndex + (o.mustEncrypt ? " must-encrypt" : ""), d: d, session: o.session }
    return { outcome: o.kind === "fail" ? "fail: " + o.reason : o.kind, d: d, session: undefined }
}

export const keysSuite = suite("keys: refusals, rotation, revocation", function (test) {
    test("refusal lines: the reason parsed, '!auth refused' is wrong-key, anything odd is 'unspecified', other lines are not refusals", async function () {
        eq(refusalLine("id-in-use"), "!refused id-in-use\n", "line")
        eq(parseRefusal("!refused id-in-use"), "id-in-use", "reason")
        eq(parseRefusal("!refused revoked and more"), "revoked", "words after the reason")
        eq(parseRefusal("!auth refused"), "wrong-key", "older form")
        eq(parseRefusal("!refused"), "unspecified", "no reason")
        eq(parseRefusal("!refused <script>"), "unspecified", "not a plain reason")
        eq(parseRefusal("!refusedx"), undefined, "another word")
        eq(parseRefusal("!hello epoch=1"), undefined, "a hello")
    })

    test("the server tells a devs-iot client why (after its probe) and a v1 client nothing", async function () {
        const r = new ProbeRefusal("id-in-use", 2000, 0)
        r.push(Buffer.from(blanks(10)))
        eq(r.step(0), "told", "devs-iot probe")
        eq((r.pollTransmit() as Buffer).toString("utf-8"), "!refused id-in-use\n", "the line")
        const v = new ProbeRefusal("id-in-use", 2000, 0)
        v.push(Buffer.from("\n\n00hello\n"))
        eq(v.step(0), "silent", "a v1 line")
        eq(v.pollTransmit(), undefined, "nothing for v1")
        const t = new ProbeRefusal("revoked", 2000, 0)
        t.push(Buffer.from("\n\n"))
        eq(t.step(0), undefined, "waiting")
        eq(t.pollTimeout(), 500, "timeout/4")
        eq(t.step(500), "silent", "no probe in time: a v1 client's keepalives")
        eq(t.pollTransmit(), undefined, "nothing sent")
    })

    test("a client without a key that is challenged is not up until let in; a refusal is a hint, closes, and it never was up", async function () {
        let d = client(undefined, false)
        d.feed(challengeLine("es1", NS))
        ok(d.take().indexOf("!hello epoch=ec1") === 0, "answers plain")
        eq(d.count("up"), 0, "not up on the challenge")
        d.feed(refusalLine("auth-required"))
        eq(d.count("up"), 0, "never up")
        eq(d.count("close"), 1, "closed")
        const t = noticeText(d, "refused")
        ok(t.indexOf("give this client its key") >= 0, "says why: " + t)
        ok(t.indexOf("only a hint") >= 0, "as a hint: " + t)
        d = client(undefined, false)
        d.feed(challengeLine("es1", NS))
        d.take()
        d.feed("\n")
        eq(d.count("up"), 1, "up once the server lets it in (a keepalive)")
        eq(d.link.status(), true, "status")
    })

    test("a keyed client given a refusal before the server's proof: a hint, never 'wrong key' as fact", async function () {
        const forms = ["!auth refused\n", "!refused wrong-key\n", "!refused revoked\n"]
        for (let i = 0; i < forms.length; i++) {
            const d = client(key(), false)
            d.feed(challengeLine("es1", NS))
            d.take()
            d.feed(forms[i])
            eq(d.count("close"), 1, "closed on " + forms[i])
            const t = noticeText(d, "refused")
            ok(t.indexOf("not authenticated, so only a hint") >= 0, "a hint: " + t)
            eq(d.notices("auth"), 0, "not reported as an authentication failure")
        }
        // Before even the challenge (anyone on the path can send it).
        const e = client(key(), false)
        e.feed("!refused id-in-use\n")
        eq(e.count("close"), 1, "closed")
        ok(noticeText(e, "refused").indexOf("only a hint") >= 0, "a hint")
    })

    test("two keys for an id (rotation): either authenticates and the outcome names it; a third key is refused", async function () {
        let h = handshake(key(), [key(), nextKey()], false)
        eq(h.outcome, "auth 0", "the current key")
        eq(h.d.count("up"), 1, "client up")
        h = handshake(nextKey(), [key(), nextKey()], false)
        eq(h.outcome, "auth 1", "the next key")
        eq(h.d.count("up"), 1, "client up (the server proved the key the client holds)")
        h = handshake(otherKey(), [key(), nextKey()], false)
        eq(h.outcome, "fail: wrong key: the client's proof does not verify", "another key")
        eq(h.d.count("up"), 0, "never up")
    })

    test("an id that must encrypt: the server asks (enc=1), a client that knows it encrypts; a message only MACed closes the link", async function () {
        const h = handshake(key(), [key()], true)
        eq(h.outcome, "auth 0 must-encrypt", "outcome")
        // The client, set not to encrypt, encrypts what it sends now.
        h.d.take()
        h.d.link.write("secret", true, true)
        h.d.pump()
        const wire = h.d.take()
        ok(wire.indexOf("!e") === 0 && wire.indexOf("secret") < 0, "encrypted: " + wire)
        // The server's side: a client that ignores enc=1 sends "!m" messages.
        const t: Transcript = { id: "board-1", ns: NS, nc: "ffeeddccbbaa99887766554433221100", es: "es1", ec: "ec1" }
        const plainClient = deriveSession(crypto(), key(), "client", t, false)
        const s = new Drive(new ServerLink(nodeCfg({}), "es1"))
        s.link.openAuthenticated(0, deriveSession(crypto(), key(), "server", t, false), "ec1", true)
        s.pump()
        s.feed(plainClient.seal(Buffer.alloc(0)).toString("utf-8"))
        eq(s.count("close"), 0, "a MACed keepalive is fine")
        s.feed(plainClient.seal(Buffer.from("00hi")).toString("utf-8"))
        eq(s.count("close"), 1, "closed")
        ok(noticeText(s, "auth").indexOf("must encrypt") >= 0, "says why")
        eq(s.rx.length, 0, "nothing delivered")
        ok(proofLine("ab", true).indexOf(" enc=1\n") > 0 && proofLine("ab").indexOf("enc") < 0, "proof line field")
    })

    test("the server ends a session it no longer admits: a sealed refusal for a keyed client, which reports it as the server's", async function () {
        const h = handshake(key(), [key()], false)
        const d = h.d
        const s = new ServerLink(nodeCfg({}), "es1")
        s.openAuthenticated(0, h.session as Session, d.link.epoch)
        const b = s.refuse(0, "revoked")
        ok(b !== undefined && b.toString("utf-8").indexOf("!m00000000") === 0, "sealed")
        eq(s.status(), false, "the server's link is down")
        d.feed((b as Buffer).toString("utf-8"))
        eq(d.count("close"), 1, "the client closes")
        const text = noticeText(d, "refused")
        ok(text.indexOf("revoked by the server's operator (authenticated)") >= 0, "authenticated: " + text)
        // A v1 client is told nothing.
        const v = new Drive(new ServerLink(nodeCfg({}), "es1"))
        v.open()
        v.feed("00hi\n")
        v.advance(300)
        eq(v.link.refuse(v.now, "revoked"), undefined, "no bytes for a v1 client")
    })

    test("key push: taken only sealed and encrypted on an authenticated link, its check value verified; the server hears !rekeyed", async function () {
        const h = handshake(key(), [key(), nextKey()], false)
        const d = h.d
        const sess = h.session as Session
        const line = rekeyLine(crypto(), nextKey(), "board-1")
        d.feed(sess.seal(Buffer.from(line)).toString("utf-8"))
        d.feed(sess.seal(Buffer.from(line.slice(0, line.length - 8) + "00000000"), true).toString("utf-8"))
        eq(d.count("rekey") + d.count("close"), 0, "a MACed push and a bad check value are dropped, the link stays")
        eq(d.notices("bad-line"), 2, "said")
        ok(noticeText(d, "bad-line").indexOf("33") < 0, "no key material in a notice")
        const s = new Drive(new ServerLink(nodeCfg({}), "es1"))
        s.link.openAuthenticated(0, sess, d.link.epoch)
        ok(s.link.sendSecret(line), "pushed")
        s.pump()
        ok(s.sent[0].indexOf("!e") === 0 && s.sent[0].indexOf("3333333333333333") < 0, "encrypted, though encrypt is off")
        d.feed(s.take())
        let got = ""
        for (let i = 0; i < d.events.length; i++) {
            const e = d.events[i]
            if (e.type === "rekey") got = e.key.toString("hex") + " " + e.kcv
        }
        eq(got, nextKey().toString("hex") + " " + kcvOf(crypto(), nextKey(), "board-1"), "the key and its check value")
        ok(confirmKey(d.link, kcvOf(crypto(), nextKey(), "board-1")), "confirmed")
        d.pump()
        s.feed(d.take())
        let kcv = ""
        for (let i = 0; i < s.events.length; i++) {
            const e = s.events[i]
            if (e.type === "rekeyed") kcv = e.kcv
        }
        eq(kcv, kcvOf(crypto(), nextKey(), "board-1"), "the server hears it")
        const p = client(undefined, false)
        p.feed(helloLine("es1"))
        p.feed(line + "\n")
        eq(p.count("rekey"), 0, "a plain link never takes one")
        const ps = serverDrive({})
        eq(ps.link.sendSecret(line), false, "nor sends one")
    })

    test("back-off: a link refused right after it came up is a failure, growing to the cap; a link that stayed up resets it; reports on 1, 2, 4, 8...", async function () {
        const b = new Backoff(100, 800)
        const tops: number[] = []
        const reported: number[] = []
        let now = 0
        for (let i = 0; i < 6; i++) {
            b.linkUp(now) // connected, then refused at once
            now += 5
            b.linkDown(now, 2000)
            const d = b.next(0.999)
            tops.push(d)
            if (b.shouldReport()) reported.push(i + 1)
            now += d
        }
        eq(tops.join(","), "99,199,399,799,799,799", "grows to the cap")
        eq(reported.join(","), "1,2,4", "reported")
        b.linkUp(now)
        b.linkDown(now + 2000, 2000)
        eq(b.next(0.999), 99, "a link up for `stable` ms resets it")
        b.linkDown(now + 9000, 2000)
        eq(b.next(0.999), 199, "a socket that never came up does not")
    })
})
