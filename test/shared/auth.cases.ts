// Authentication: the crypto primitives against reference vectors,
// the sealed line format byte for byte, each attack on a sealed link, the
// handshake's outcomes, and two keyed links through the in-memory network.
// Run on Node and in the DeviceScript VM, each with its own crypto.

import { answerLine, challengeLine, deriveSession, ClientLink, isSealed, ServerLink, linkAuth, setAuth, proof, proofLine, ServerAuth, Session, Transcript } from "../../src/shared/index.js"
import { crypto, eq, ok, suite } from "./harness.js"
import { Drive, nodeCfg } from "./drive.js"
import { checkDelivery, Faults, noFaults, Sim, SimKeys, Writer } from "./sim.js"

function fill(n: number, v: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = v
    return b
}

const KEY = fill(32, 0x11)
const OTHER = fill(32, 0x22)

function pairSessions(encrypt: boolean): Session[] {
    const t: Transcript = { id: "board-1", ns: "00112233445566778899aabbccddeeff", nc: "ffeeddccbbaa99887766554433221100", es: "es1", ec: "ec1" }
    return [deriveSession(crypto(), KEY, "client", t, encrypt), deriveSession(crypto(), KEY, "server", t, encrypt)]
}

function lineOf(b: Buffer): Buffer {
    return b.slice(0, b.length - 1)
}

function opened(s: Session, b: Buffer): string {
    const o = s.open(lineOf(b))
    return o.ok ? "ok " + o.body.toString("utf-8") : "refused " + o.reason
}

function keys(clientKey: Buffer | undefined, serverKey: Buffer | undefined, encrypt: boolean, allowPlain: boolean): SimKeys {
    return { crypto: crypto(), clientKey: clientKey, serverKey: serverKey, encrypt: encrypt, allowPlain: allowPlain }
}

async function upBoth(sim: Sim, ms: number): Promise<boolean> {
    return await sim.run(function () {
        return sim.client.status() && sim.server !== undefined && sim.server.status()
    }, ms)
}

// Every line after the handshake is sealed: "!m" or "!e".
function allSealedAfterHandshake(wire: string[]): string {
    let authed = false
    for (let i = 0; i < wire.length; i++) {
        const w = wire[i]
        if (w.indexOf("<!auth mac=") === 0) {
            authed = true
            continue
        }
        if (!authed) continue
        const text = w.slice(1)
        let from = 0
        while (from < text.length) {
            const nl = text.indexOf("\n", from)
            const line = text.slice(from, nl)
            if (line.indexOf("!m") !== 0 && line.indexOf("!e") !== 0) return "unsealed line after the handshake: " + line
            from = nl + 1
        }
    }
    return authed ? "" : "no handshake seen"
}

// Qos lines both ways through a faulty network between keyed links; the problem or "".
async function keyedExchange(seed: number): Promise<string> {
    const f: Faults = noFaults()
    f.lossPct = 3
    f.dupPct = 3
    f.cutEvery = 1500
    f.silentPct = 30
    f.latency = 2
    f.maxChunk = 1 + (seed % 7)
    f.until = 15000
    const sim = new Sim(nodeCfg({}), nodeCfg({}), f, seed)
    sim.useKeys(keys(KEY, KEY, seed % 2 === 0, false))
    const cw = new Writer("c", 25, true, true, 4)
    const sw = new Writer("s", 25, true, false, 8)
    sim.clientWriter = cw
    sim.serverWriter = sw
    const done = await sim.run(function () {
        return cw.finished() && sw.finished() && sim.now > 15000
    }, 200000)
    if (!done) return "not finished"
    await sim.runFor(5000)
    let p = checkDelivery(cw, sim.serverRx, true)
    if (p !== "") return "client -> server: " + p
    p = checkDelivery(sw, sim.clientRx, false)
    if (p !== "") return "server -> client: " + p
    if (sim.serverRx.length + sim.clientRx.length !== 50) return "delivered " + sim.serverRx.length + " + " + sim.clientRx.length
    if (sim.cuts === 0 || sim.outcomes.length < 2) return "no cut or re-authentication happened"
    return ""
}

export const authSuite = suite("authentication and sealed lines", function (test) {
    test("primitives: HMAC-SHA256 (RFC 4231 #2), HKDF-SHA256 (RFC 5869 #1), AES-256-CCM match the reference bytes", async function () {
        const c = crypto()
        eq(c.hmac(Buffer.from("Jefe"), Buffer.from("what do ya want for nothing?")).toString("hex"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "hmac")
        const salt = Buffer.from("000102030405060708090a0b0c", "hex")
        eq(c.hkdf(fill(22, 0x0b), salt, Buffer.from("f0f1f2f3f4f5f6f7f8f9", "hex")).toString("hex"), "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf", "hkdf")
        const nonce = Buffer.alloc(13)
        nonce[12] = 5
        const ct = c.encrypt(fill(32, 7), nonce, Buffer.from("00hello"))
        eq(ct.toString("hex"), "dbf9b7c1271d6ddccb80a11ab77aa29f959e1075930ce8", "aes-256-ccm with a 16-byte tag")
        const pt = c.decrypt(fill(32, 7), nonce, ct)
        eq(pt === undefined ? "<refused>" : pt.toString("utf-8"), "00hello", "decrypts")
        ct[3] = ct[3] ^ 1
        ok(c.decrypt(fill(32, 7), nonce, ct) === undefined, "a flipped bit is refused")
        eq(c.random(16).length, 16, "random bytes")
    })

    test("sealed lines, byte for byte: the handshake proofs and the first lines each way", async function () {
        const t: Transcript = { id: "board-1", ns: "00112233445566778899aabbccddeeff", nc: "ffeeddccbbaa99887766554433221100", es: "es1", ec: "ec1", ms: "65536", mc: "2048" }
        eq(proof(crypto(), KEY, "client", t), FIX_CLIENT_PROOF, "client proof")
        eq(proof(crypto(), KEY, "server", t), FIX_SERVER_PROOF, "server proof")
        const p = pairSessions(false)
        eq(p[0].seal(Buffer.from("00hello")).toString("utf-8"), FIX_C2S_0, "client's line 0")
        eq(p[0].seal(Buffer.alloc(0)).toString("utf-8"), FIX_C2S_1, "client's keepalive, line 1")
        eq(p[1].seal(Buffer.from("00")).toString("utf-8"), FIX_S2C_0, "server's ACK, line 0")
        const e = pairSessions(true)
        eq(e[0].seal(Buffer.from("00hello")).toString("utf-8"), FIX_C2S_ENC_0, "client's encrypted line 0")
        eq(e[0].seal(Buffer.from("00")).toString("utf-8").slice(0, 10), "!m00000001", "ACKs are MACed, not encrypted")
    })

    test("open: messages, ACKs and keepalives round-trip, plain and encrypted", async function () {
        for (let enc = 0; enc < 2; enc++) {
            const p = pairSessions(enc === 1)
            eq(opened(p[1], p[0].seal(Buffer.from("00héllo"))), "ok 00héllo", "message")
            eq(opened(p[1], p[0].seal(Buffer.from("3f"))), "ok 3f", "ACK")
            eq(opened(p[1], p[0].seal(Buffer.alloc(0))), "ok ", "keepalive")
            eq(opened(p[0], p[1].seal(Buffer.from("01x"))), "ok 01x", "other direction")
        }
    })

    test("attacks on a sealed link are refused: replay, reorder, injection, tampering, reflection, unsealed lines", async function () {
        let p = pairSessions(false)
        const a = p[0].seal(Buffer.from("00a"))
        const b = p[0].seal(Buffer.from("01b"))
        eq(opened(p[1], a), "ok 00a", "first")
        ok(opened(p[1], a).indexOf("refused sequence 0 where 1 was due") === 0, "replayed line")
        p = pairSessions(false)
        const a2 = p[0].seal(Buffer.from("00a"))
        const b2 = p[0].seal(Buffer.from("01b"))
        ok(opened(p[1], b2).indexOf("refused sequence 1 where 0 was due") === 0, "reordered (or dropped) line")
        ok(a2.length > 0 && b.length > 0, "lines made")
        p = pairSessions(false)
        const x = p[0].seal(Buffer.from("00abc"))
        x[x.length - 2] = 100 // "abc" -> "abd"
        ok(opened(p[1], x).indexOf("refused bad MAC on line 0") === 0, "tampered payload")
        p = pairSessions(false)
        const ack = p[0].seal(Buffer.from("05"))
        ack[43] = 54 // "05" -> "06": an injected ACK for another id
        ok(opened(p[1], ack).indexOf("refused bad MAC") === 0, "forged ACK")
        p = pairSessions(false)
        ok(opened(p[0], p[0].seal(Buffer.from("00me"))).indexOf("refused bad MAC") === 0, "a line reflected to its sender")
        p = pairSessions(false)
        eq(opened(p[1], Buffer.from("\n")), "refused unauthenticated line on an authenticated link", "plain keepalive")
        eq(opened(p[1], Buffer.from("00hi\n")), "refused unauthenticated line on an authenticated link", "plain message")
        eq(opened(p[1], Buffer.from("!m00000000" + "00000000000000000000000000000000" + "00hi\n")), "refused bad MAC on line 0", "guessed MAC")
        p = pairSessions(true)
        const ct = p[0].seal(Buffer.from("00secret"))
        ct[12] = ct[12] === 48 ? 49 : 48
        ok(opened(p[1], ct).indexOf("refused bad MAC (AES-CCM tag) on line 0") === 0, "tampered cipher text")
    })

    test("keyed pair through the network: authenticates both ways, every later line sealed, qos lines both ways", async function () {
        const sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 3)
        sim.useKeys(keys(KEY, KEY, false, false))
        sim.record = true
        sim.clientWriter = new Writer("c", 20, true, true, 1)
        sim.serverWriter = new Writer("s", 20, true, false, 8)
        const cw = sim.clientWriter
        const sw = sim.serverWriter
        ok(await sim.run(function () {
            return cw.finished() && sw.finished()
        }, 20000), "all written")
        eq(sim.outcomes.join(","), "auth", "one authenticated connection")
        eq(sim.clientPeers, "devs-iot", "client up once")
        ok(isSealed(sim.client) && isSealed(sim.server as ServerLink), "sealed at both ends")
        eq(checkDelivery(cw, sim.serverRx, true), "", "client -> server")
        eq(checkDelivery(sw, sim.clientRx, false), "", "server -> client")
        eq(sim.serverRx.length + sim.clientRx.length, 40, "every line once")
        eq(allSealedAfterHandshake(sim.wire), "", "wire")
    })

    test("keyed pair, encryption on: no payload in clear on the wire", async function () {
        const sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 4)
        sim.useKeys(keys(KEY, KEY, true, false))
        sim.record = true
        sim.clientWriter = new Writer("secret", 5, true, true, 1)
        const cw = sim.clientWriter
        ok(await sim.run(function () {
            return cw.finished()
        }, 20000), "written")
        eq(checkDelivery(cw, sim.serverRx, true), "", "delivered")
        eq(sim.wire.join("").indexOf("secret"), -1, "no payload in clear")
        ok(sim.wire.join("").indexOf("!e00000000") >= 0, "encrypted lines")
    })

    test("exactly-once with keys and encryption through loss, duplication, cuts and 1-7 byte chunks", async function () {
        for (let seed = 31; seed <= 32; seed++) eq(await keyedExchange(seed), "", "seed " + seed)
    })

    test("wrong key: the server refuses the connection ('wrong key'), nothing is delivered", async function () {
        const sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 5)
        sim.useKeys(keys(OTHER, KEY, false, false))
        sim.clientWriter = new Writer("c", 3, true, true, 1)
        await sim.runFor(3000)
        ok(sim.outcomes.length >= 2, "retried")
        eq(sim.outcomes[0], "fail: wrong key: the client's proof does not verify", "reason")
        ok((sim.counts["client notice"] || 0) >= 1, "the client was told (!auth refused)")
        eq(sim.serverRx.length, 0, "nothing delivered")
        eq(sim.server !== undefined && sim.server.connects, 0, "server link never up")
        eq(sim.clientPeers, "", "client never up")
    })

    test("the client checks the server's proof: a server without the key is refused", async function () {
        const d = new Drive(new ClientLink(nodeCfg({}), "ec1", "board-1"))
        setAuth(d.link, linkAuth(crypto(), KEY, false))
        d.open()
        d.take()
        d.feed(challengeLine("es1", "00112233445566778899aabbccddeeff"))
        ok(d.take().indexOf("!hello epoch=ec1 auth=") === 0, "answers the challenge")
        d.advance(1500) // the server is slow to prove: no plain keepalive meanwhile
        eq(d.take(), "", "nothing sent while waiting for the proof")
        eq(d.count("close"), 0, "still waiting")
        d.feed(proofLine("aa" + FIX_SERVER_PROOF.slice(2)))
        eq(d.count("close"), 1, "closed")
        eq(d.count("up"), 0, "never up")
        eq(d.notices("auth"), 1, "one auth notice")
    })

    test("a keyed client refuses a server that does not challenge it (plain hello, v1 line)", async function () {
        const firsts = ["!hello epoch=es1\n", "\n", "00hi\n"]
        for (let i = 0; i < firsts.length; i++) {
            const d = new Drive(new ClientLink(nodeCfg({}), "ec1", "board-1"))
            setAuth(d.link, linkAuth(crypto(), KEY, false))
            d.open()
            d.take()
            d.feed(firsts[i])
            eq(d.count("close"), 1, "closed after " + JSON.stringify(firsts[i]))
            eq(d.take(), "", "sent nothing back")
            eq(d.rx.length, 0, "delivered nothing")
        }
    })

    test("keyed id, devs-iot client without a key: refused; up and plain when the id may stay plain", async function () {
        let sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 6)
        sim.useKeys(keys(undefined, KEY, false, false))
        await sim.runFor(1000)
        eq(sim.outcomes[0], "hello", "answered plain")
        eq(sim.server !== undefined && sim.server.connects, 0, "refused")
        sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 6)
        sim.useKeys(keys(undefined, KEY, false, true))
        ok(await upBoth(sim, 3000), "up when allowed plain")
        ok(!isSealed(sim.client), "plain")
        eq(sim.clientPeers, "devs-iot", "still devs-iot (epochs)")
    })

    test("a client without a key, challenged, comes up on the server's keepalive only (its let-in); a refusal or any other line closes the socket", async function () {
        const nexts = ["\n", "!refused revoked\n", "00hi\n", "!hello epoch=es2\n", "x\n"]
        for (let i = 0; i < nexts.length; i++) {
            const d = new Drive(new ClientLink(nodeCfg({}), "ec1", "board-1"))
            d.open()
            d.take()
            d.feed(challengeLine("es1", "00112233445566778899aabbccddeeff"))
            ok(d.take().indexOf("!hello epoch=ec1") === 0, "answered plain")
            d.feed(nexts[i])
            const letIn = i === 0
            eq(d.count("up"), letIn ? 1 : 0, "up after " + JSON.stringify(nexts[i]))
            eq(d.count("close"), letIn ? 0 : 1, "closed after " + JSON.stringify(nexts[i]))
            eq(d.notices("refused"), letIn ? 0 : 1, "one refusal notice after " + JSON.stringify(nexts[i]))
            eq(d.rx.length, 0, "delivered nothing")
        }
    })

    test("no challenge without a server key: a keyless pair is unchanged", async function () {
        const sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 7)
        sim.useKeys(keys(undefined, undefined, false, false))
        sim.record = true
        ok(await upBoth(sim, 3000), "up")
        eq(sim.wire.join("").indexOf("auth"), -1, "no auth on the wire")
    })

    test("an injected line on a live sealed link closes it; nothing injected is delivered; the link recovers", async function () {
        const sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 8)
        sim.useKeys(keys(KEY, KEY, false, false))
        ok(await upBoth(sim, 3000), "up")
        sim.inject(true, Buffer.from("07evil\n"))
        await sim.runFor(50)
        eq(sim.counts["server close"], 1, "the server closed")
        ok(await upBoth(sim, 3000), "back up")
        sim.inject(false, Buffer.from("!m00000005" + "0123456789abcdef0123456789abcdef" + "07evil\n"))
        await sim.runFor(50)
        eq(sim.counts["client close"], 1, "the client closed")
        ok(await upBoth(sim, 3000), "back up again")
        eq(sim.outcomes.join(","), "auth,auth,auth", "re-authenticated")
        eq(sim.serverRx.length + sim.clientRx.length, 0, "nothing injected delivered")
    })

    test("bytes that are not a verified line do not keep a sealed link alive", async function () {
        const p = pairSessions(false)
        const d = new Drive(new ServerLink(nodeCfg({ timeout: 2000 }), "es1"))
        d.link.openAuthenticated(0, p[1], "ec1")
        d.pump()
        for (let t = 0; t < 10; t++) {
            d.advance(300)
            d.link.receive(Buffer.from("!m0000"), d.now) // never a whole line
            d.pump()
        }
        eq(d.count("close"), 1, "outage declared")
        ok(d.events.length > 0 && d.link.status() === false, "down")
    })

    test("server handshake: a v1 client (no probe) and a bad answer", async function () {
        const a = new ServerAuth(crypto(), "x", [KEY], "es", 2000, false, 0)
        a.push(Buffer.from("\n00hi\n"))
        const o = a.step(0)
        eq(o !== undefined && o.kind, "v1", "v1")
        eq(o !== undefined && o.kind === "v1" && o.rest.length > 0 && o.rest[0].toString("utf-8"), "00hi\n", "its line is kept")
        const b = new ServerAuth(crypto(), "x", [KEY], "es", 2000, false, 0)
        b.push(Buffer.from("\n\n\n\n\n\n\n\n\n\n"))
        eq(b.step(0), undefined, "challenge sent")
        ok((b.pollTransmit() as Buffer).toString("utf-8").indexOf("!hello epoch=es auth=") === 0, "challenge")
        b.push(Buffer.from(answerLine("ec", "zz", "00")))
        const ob = b.step(1)
        eq(ob !== undefined && ob.kind === "fail" && ob.reason, "bad client nonce in the answer", "bad nonce")
        const c = new ServerAuth(crypto(), "x", [KEY], "es", 2000, false, 0)
        c.push(Buffer.from("\n\n\n\n\n\n\n\n\n\n"))
        c.step(0)
        const oc = c.handleTimeout(2000)
        eq(oc !== undefined && oc.kind === "fail" && oc.reason, "no answer to the challenge within 2000 ms", "timeout")
    })
})

// Fixtures, computed once and checked on both runtimes.
const FIX_CLIENT_PROOF = "b2d267528d6d934fd3fa7e43daed58672ecf55052898de4b9e186d0837f251ce"
const FIX_SERVER_PROOF = "93c37acbf2c949a4e4579ba4beb2951e255434fb12701b863357b182e7d09fe4"
const FIX_C2S_0 = "!m000000004f35b3030ff3462c62807768859cdcef00hello\n"
const FIX_C2S_1 = "!m000000012ae103f9fe6420eb8007cbc6d8b276a3\n"
const FIX_S2C_0 = "!m000000008a37f1c0dc81a22fb99805992452193600\n"
const FIX_C2S_ENC_0 = "!e00000000fa3dbd3d64d83ad6d65aa9791cbf73195a91c7a944d5fd\n"
