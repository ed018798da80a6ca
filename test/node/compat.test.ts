// Compatibility: devs-iot's Node server and Node client against peers that
// behave like the ORIGINAL micropython-iot ends (test/kit/v1peer.ts, written
// from docs/protocol.md alone). A v1 peer must get a working link, every message
// (exactly once with qos), and never a devs-iot extension line ("!...").
import assert from "node:assert/strict"
import type { EventEmitter } from "node:events"
import { Client, Server, type Warning } from "../../src/server/index.js"
import { V1Client, V1Server } from "../kit/v1peer.js"
import { cleanup, closeAll, within } from "../kit/util.js"

const T = 400 // timeout on every end: short, so outages and resends are quick
const BOUND = 5000 // the limit for anything that should take well under a second

async function readN(x: { readline(): Promise<string> }, n: number, what: string): Promise<string[]> {
    const got: string[] = []
    const all = (async () => {
        while (got.length < n) got.push(await x.readline())
        return got
    })()
    all.catch(() => {})
    return within(all, BOUND, () => `${what} (${n} lines; got ${JSON.stringify(got)})`)
}

// Resolves when a Connection or Client reports the wanted link state.
function linkState(x: EventEmitter & { status(): boolean }, up: boolean): Promise<void> {
    return new Promise((resolve) => {
        if (x.status() === up) return resolve()
        const on = (u: boolean) => {
            if (u !== up) return
            x.off("status", on)
            resolve()
        }
        x.on("status", on)
    })
}

function nextWarning(server: Server, code: Warning["code"]): Promise<Warning> {
    return new Promise((resolve) => {
        const on = (w: Warning) => {
            if (w.code !== code) return
            server.off("warning", on)
            resolve(w)
        }
        server.on("warning", on)
    })
}

// Every line a v1 peer received must parse as v1: keepalive, ACK or message.
function assertPlainV1(lines: string[], who: string): void {
    const odd = lines.filter((l) => l !== "" && !/^[0-9a-f]{2}/.test(l))
    assert.deepEqual(odd, [], `${who} received lines that are not v1`)
}

describe("compatibility with the original micropython-iot ends (v1 peers)", function () {
    this.timeout(20000)

    afterEach(closeAll)

    async function startServer(): Promise<Server> {
        const s = cleanup(new Server({ port: 0, host: "127.0.0.1", timeout: T }))
        await s.listen()
        return s
    }
    function startV1Client(port: number, id: string): V1Client {
        return cleanup(new V1Client({ id, port, timeout: T })).start()
    }
    async function startV1Server(): Promise<V1Server> {
        const s = cleanup(new V1Server({ timeout: T }))
        await s.listen()
        return s
    }
    function startClient(port: number, id: string): Client {
        return cleanup(new Client({ id, host: "127.0.0.1", port, timeout: T })).start()
    }

    describe("devs-iot Server + original board (V1Client)", function () {
        async function linked(id: string) {
            const server = await startServer()
            const v = startV1Client(server.port, id)
            const conn = await within(server.clientConn(id), BOUND, `server.clientConn(${id})`)
            await within(conn.connected(), BOUND, "the server's link up")
            await within(v.connected(), BOUND, "the V1Client got its first line")
            return { server, v, conn }
        }

        it("connects as a v1 peer; qos/wait/no-qos messages both ways; no '!' line ever reaches the board", async function () {
            const { v, conn } = await linked("b1")
            assert.equal(conn.peer, "v1")
            const up = ["qos wait", "qos no wait", "no qos", "utf-8 héllo ✓ 😀"]
            await within(v.write(up[0]!), BOUND, "V1Client qos+wait write ACKed")
            await within(v.write(up[1]!, { wait: false }), BOUND, "V1Client qos write without wait ACKed")
            await within(v.write(up[2]!, { qos: false }), BOUND, "V1Client non-qos write sent")
            await within(v.write(up[3]!), BOUND, "V1Client utf-8 write ACKed")
            assert.deepEqual(await readN(conn, 4, "the server reads the board's lines"), up)

            const down = ["Qos wait", "Qos no wait", "No qos", "utf-8 ÄÖÜ €"]
            await within(conn.write(down[0]!), BOUND, "server qos+wait write ACKed by the V1Client")
            await within(conn.write(down[1]!, { wait: false }), BOUND, "server qos write without wait ACKed")
            await within(conn.write(down[2]!, { qos: false }), BOUND, "server non-qos write sent")
            await within(conn.write(down[3]!), BOUND, "server utf-8 write ACKed")
            assert.deepEqual(await readN(v, 4, "the V1Client reads the server's lines"), down)

            // Idle for 8 more lines (2 x timeout of keepalives): still the same link.
            const n = v.rawLines.length
            await within(v.waitFor(() => v.rawLines.length >= n + 8), BOUND, "8 more lines at the V1Client")
            assert.deepEqual(v.bangLines, [], "a '!' extension line reached the v1 board")
            assertPlainV1(v.rawLines, "the V1Client")
            assert.deepEqual(v.badLines, [])
            assert.equal(v.duplicates, 0)
            assert.equal(v.drops, 0, "the V1Client saw an outage")
            assert.equal(conn.connects, 1)
            assert.equal(conn.status(), true)
        })

        it("a restarted board (new V1Client, ids from 00 again) has its new messages delivered, not dropped as duplicates", async function () {
            const { server, v, conn } = await linked("b2")
            const before = ["a0", "a1", "a2", "a3", "a4"] // ids 00..04
            for (const l of before) await within(v.write(l), BOUND, `first board writes ${l}`)
            assert.deepEqual(await readN(conn, 5, "the first board's lines"), before)
            await v.close()
            await within(linkState(conn, false), BOUND, "the server sees the closed socket as an outage")

            const v2 = startV1Client(server.port, "b2")
            await within(v2.connected(), BOUND, "the restarted board connects")
            const after = ["b0", "b1", "b2"] // ids 00..02 again
            for (const l of after) await within(v2.write(l), BOUND, `restarted board writes ${l}`)
            assert.deepEqual(await readN(conn, 3, "the restarted board's lines"), after)
            // (A v1 board may talk during the server's 200 ms warm-up; "up" follows it.)
            await within(linkState(conn, true), BOUND, "the server's link up again")
            assert.equal(conn.connects, 2)
            assert.equal(conn.peer, "v1")
            assert.deepEqual(v2.bangLines, [])
        })

        it("garbage lines from the board ('zz', 'zzhello') are dropped; the link, messages and ACKs go on (fault 4)", async function () {
            const { server, v, conn } = await linked("b3")
            const bad = nextWarning(server, "bad-line")
            await within(v.write("before"), BOUND, "a write before the garbage")
            v.sendRaw("zz\n")
            v.sendRaw("zzhello\n")
            await within(bad, BOUND, "a bad-line warning")
            await within(v.write("after 1"), BOUND, "a qos write after the garbage is still ACKed")
            await within(v.write("after 2", { qos: false }), BOUND, "a non-qos write after the garbage")
            assert.deepEqual(await readN(conn, 3, "the server's lines around the garbage"), ["before", "after 1", "after 2"])
            await within(conn.write("reply"), BOUND, "the server's qos write after the garbage is ACKed")
            assert.equal(await within(v.readline(), BOUND, "the reply at the board"), "reply")
            // Still alive after more than a timeout: keepalives in, no outage.
            const n = v.rawLines.length
            await within(v.waitFor(() => v.rawLines.length >= n + 6), BOUND, "6 more lines at the V1Client")
            assert.equal(conn.connects, 1)
            assert.equal(conn.status(), true)
            assert.equal(v.drops, 0)
            assert.deepEqual(v.bangLines, [])
        })

        it("a UTF-8 character split across two TCP writes from the board arrives whole (fault 3)", async function () {
            const { v, conn } = await linked("b4")
            const payload = "split €uro, ✓ and 😀"
            const line = Buffer.from("00" + payload)
            const euro = line.indexOf(Buffer.from("€")) + 1 // after the 1st of €'s 3 bytes
            const emoji = Buffer.from("01" + payload).indexOf(Buffer.from("😀")) + 2 // inside 😀's 4 bytes
            const m1 = await within(v.writeSplit(payload, euro), BOUND, "first split write")
            const m2 = await within(v.writeSplit(payload, emoji), BOUND, "second split write")
            assert.deepEqual([m1, m2], [0, 1])
            await within(Promise.all([v.waitAcked(m1), v.waitAcked(m2)]), BOUND, "both split messages ACKed")
            assert.deepEqual(await readN(conn, 2, "the split lines"), [payload, payload])
            await within(v.write("next"), BOUND, "a write after the split lines")
            assert.equal(await within(conn.readline(), BOUND, "the next line"), "next")
            assert.equal(conn.connects, 1)
        })

        it("a second board with a live, talking id is refused as 'duplicate-id'; once the first socket closes a newcomer takes over (fault 9)", async function () {
            const { server, v, conn } = await linked("b5")
            const warnings: Warning[] = []
            server.on("warning", (w) => warnings.push(w))
            await within(v.write("first 1"), BOUND, "the first board writes")
            const dup = nextWarning(server, "duplicate-id")
            const v2 = startV1Client(server.port, "b5")
            const talking = v.write("first 2") // the first board talks meanwhile
            const w = await within(dup, BOUND, "a duplicate-id warning for the second board")
            assert.equal(w.id, "b5")
            await within(v2.waitFor(() => v2.drops >= 1), BOUND, "the second board's socket closed by the server")
            assert.equal(v2.ups, 0, "the refused board got a line")
            await v2.close()
            await within(talking, BOUND, "the first board's write during the attempt")
            await within(v.write("first 3"), BOUND, "the first board writes after the attempt")
            assert.deepEqual(await readN(conn, 3, "the first board's lines"), ["first 1", "first 2", "first 3"])
            assert.equal(conn.connects, 1)
            assert.equal(v.drops, 0)

            await v.close() // its socket closes
            const v3 = startV1Client(server.port, "b5")
            await within(v3.connected(), BOUND, "the newcomer gets the link")
            await within(v3.write("third"), BOUND, "the newcomer writes")
            assert.equal(await within(conn.readline(), BOUND, "the newcomer's line"), "third")
            await within(conn.write("to third"), BOUND, "the server writes to the newcomer")
            assert.equal(await within(v3.readline(), BOUND, "the server's line at the newcomer"), "to third")
            assert.equal(conn.connects, 2)
            assert.equal(warnings.filter((x) => x.code === "duplicate-id").length, 1)
        })

        it("a non-qos line whose ACK the board withholds does not block the server's later qos wait writes (fault 5)", async function () {
            const { v, conn } = await linked("b6")
            v.withholdAck = (_mid, payload) => payload === "no ack"
            await within(conn.write("no ack", { qos: false }), BOUND, "the non-qos write")
            assert.equal(await within(v.readline(), BOUND, "the non-qos line at the board"), "no ack")
            await within(conn.write("after 1"), 2 * T + 1000, "a qos wait write after the un-ACKed non-qos line")
            await within(conn.write("after 2"), BOUND, "a second qos wait write")
            assert.deepEqual(await readN(v, 2, "the later lines"), ["after 1", "after 2"])
            // A non-qos line is not resent: count it over 2 x timeout of traffic.
            const n = v.rawLines.length
            await within(v.waitFor(() => v.rawLines.length >= n + 8), BOUND, "8 more lines at the V1Client")
            assert.equal(v.rawLines.filter((l) => l.endsWith("no ack")).length, 1)
            assert.equal(conn.connects, 1)
        })

        // A v1 receiver clears its seen set on every 00 (the original's fault
        // 1). So devs-iot sends nothing after 00 to a v1 peer until 00 is
        // ACKed: a resent 00 can then not take later lines with it. Only 00
        // itself stays exposed, as docs/protocol.md says (found by this test).
        it("fault 1 toward a v1 board: a resent 00 is the only line it can take twice", async function () {
            const { v, conn } = await linked("b7")
            const lines = [0, 1, 2, 3, 4].map((i) => `m${i}`)
            const hold = new Set(lines)
            v.withholdAck = (_mid, payload) => hold.delete(payload) // no ACK for the first sight of each
            const writes = lines.map((l) => conn.write(l, { wait: false }))
            for (const w of writes) w.catch(() => {})
            const got = await readN(v, 1, "m0 at the board")
            assert.deepEqual(got, ["m0"], "nothing after 00 before 00 is ACKed")
            v.sock!.destroy() // a cut: the board reconnects, the server resends
            await within(Promise.all(writes), 4 * BOUND, "every write ACKed after the reconnect")
            await within(conn.write("sentinel"), BOUND, "the sentinel")
            while (got.at(-1) !== "sentinel") got.push(await within(v.readline(), BOUND, `lines up to the sentinel (got ${JSON.stringify(got)})`))
            for (const l of lines.slice(1)) assert.equal(got.filter((x) => x === l).length, 1, `${l} delivered ${got.filter((x) => x === l).length} times: ${JSON.stringify(got)}`)
            assert.ok(got.filter((x) => x === "m0").length <= 2)
        })
    })

    describe("devs-iot Client + original server (V1Server)", function () {
        async function linked(id: string) {
            const vs = await startV1Server()
            const c = startClient(vs.port, id)
            await within(c.connected(), BOUND, "the client's link up")
            await within(vs.connected(id), BOUND, "the V1Server may send messages")
            return { vs, c, link: vs.link(id) }
        }

        it("connects as a v1 peer; messages both ways; the probe is harmless keepalives and no '!' line reaches the server", async function () {
            const { vs, c, link } = await linked("g1")
            assert.equal(c.peer, "v1")
            const up = ["qos wait", "qos no wait", "no qos", "utf-8 héllo ✓ 😀"]
            await within(c.write(up[0]!), BOUND, "client qos+wait write ACKed by the V1Server")
            await within(c.write(up[1]!, { wait: false }), BOUND, "client qos write without wait")
            await within(c.write(up[2]!, { qos: false }), BOUND, "client non-qos write")
            await within(c.write(up[3]!), BOUND, "client utf-8 write")
            assert.deepEqual(await readN(link, 4, "the V1Server reads the client's lines"), up)

            const down = ["Qos wait", "Qos no wait", "No qos", "utf-8 ÄÖÜ €"]
            await within(vs.write("g1", down[0]!), BOUND, "V1Server qos+wait write ACKed by the client")
            await within(vs.write("g1", down[1]!, { wait: false }), BOUND, "V1Server qos write without wait")
            await within(vs.write("g1", down[2]!, { qos: false }), BOUND, "V1Server non-qos write")
            await within(vs.write("g1", down[3]!), BOUND, "V1Server utf-8 write (waits on every earlier id: fault 5)")
            assert.deepEqual(await readN(c, 4, "the client reads the V1Server's lines"), down)

            const n = link.rawLines.length
            await within(link.waitFor(() => link.rawLines.length >= n + 8), BOUND, "8 more lines at the V1Server")
            assert.deepEqual(link.bangLines, [], "a '!' extension line reached the v1 server")
            assertPlainV1(link.rawLines, "the V1Server")
            assert.deepEqual(link.badLines, [])
            const firstMessage = link.rawLines.findIndex((l) => l !== "")
            assert.ok(firstMessage >= 10, `the 10 blank probe lines came first as keepalives (first message at line ${firstMessage})`)
            assert.equal(link.duplicates, 0)
            assert.equal(link.connects, 1)
            assert.equal(vs.refused, 0)
            assert.equal(c.connects, 1)
            assert.equal(c.status(), true)
        })

        it("cut while qos lines are in flight: the V1Server's drop-bytes-after-id quirk loses nothing; every qos line arrives exactly once", async function () {
            const { vs, c, link } = await linked("g2")
            // Id 00 first, ACKed: a resent 00 would make the v1 server clear its
            // seen set and take everything again (the original's fault 1, at its end).
            await within(c.write("first"), BOUND, "the client's first line (id 00)")
            assert.equal(await within(link.readline(), BOUND, "the first line"), "first")
            const hold = new Set(["burst 0", "burst 1", "burst 2", "burst 3", "burst 4", "ordered 2"])
            link.withholdAck = (_mid, payload) => hold.delete(payload) // the first sight of each is not ACKed

            // 1. Five qos writes without wait, all in flight and un-ACKed; then the server cuts the socket.
            const burst = [0, 1, 2, 3, 4].map((i) => `burst ${i}`)
            const writes = burst.map((l) => c.write(l, { wait: false }))
            for (const w of writes) w.catch(() => {})
            assert.deepEqual((await readN(link, 5, "the burst at the V1Server")).sort(), burst)
            vs.kill("g2")
            const during = vs.write("g2", "written during the outage")
            await within(Promise.all(writes), BOUND, "every burst write ACKed after the reconnect")
            assert.equal(link.connects, 2)

            // 2. qos+wait writes in order; the socket is cut while "ordered 2" waits for its ACK.
            const ordered = [0, 1, 2, 3, 4].map((i) => `ordered ${i}`)
            const writing = (async () => {
                for (const l of ordered) await c.write(l)
            })()
            writing.catch(() => {})
            const first = await readN(link, 3, "ordered 0..2 at the V1Server")
            assert.deepEqual(first, ordered.slice(0, 3))
            vs.kill("g2")
            const rest = await readN(link, 2, "ordered 3..4 after the second reconnect")
            assert.deepEqual(rest, ordered.slice(3))
            await within(writing, BOUND, "every ordered write ACKed")
            assert.equal(link.connects, 3)

            // Exactly once at both ends: the next line read is a fresh sentinel.
            await within(c.write("sentinel up"), BOUND, "client sentinel")
            assert.equal(await within(link.readline(), BOUND, "sentinel at the V1Server"), "sentinel up")
            assert.equal(link.queued, 0)
            await within(during, BOUND, "the V1Server's write made during the outage ACKed")
            await within(vs.write("g2", "sentinel down"), BOUND, "V1Server sentinel")
            assert.deepEqual(await readN(c, 2, "the client's lines"), ["written during the outage", "sentinel down"])

            assert.ok(link.duplicates >= 6, `the resent lines were seen again and dropped (duplicates ${link.duplicates})`)
            assert.equal(hold.size, 0)
            assert.deepEqual(link.bangLines, [])
            assertPlainV1(link.rawLines, "the V1Server")
            assert.equal(vs.refused, 0)
            assert.ok(c.connects >= 3)
            // How much the quirk dropped (0 if the client sends nothing with its id line).
            this.test!.title += ` [dropped after id: ${vs.droppedAfterId} bytes]`
        })

        // The original server reads at most 4096 bytes at a time and takes
        // each read on its own: a read that ends inside a UTF-8 character
        // kills its reader, one that starts with a line's final "\n" joins
        // that line to the next. A pipelined burst must never give it such a read.
        it("a pipelined burst of long non-ASCII lines: every read of the V1Server is whole UTF-8 and no line loses its end (faults 3 and 10 at the original server)", async function () {
            const { c, link } = await linked("g5")
            await within(c.write("first"), BOUND, "the client's first line (id 00)")
            assert.equal(await within(link.readline(), BOUND, "the first line"), "first")
            const lines = Array.from({ length: 200 }, (_, i) => `${i} ` + "é€😀x".repeat(20 + (i % 37)))
            const writes = Promise.all(lines.map((l) => c.write(l, { wait: false })))
            writes.catch(() => {})
            assert.deepEqual(await readN(link, 200, "the burst at the V1Server"), lines)
            await within(writes, BOUND, "every line ACKed")
            assert.equal(link.splitReads, 0, "reads of the V1Server that end inside a UTF-8 character (its reader would have died)")
            assert.equal(link.joinedLines, 0, "lines whose final newline began a read of the V1Server")
            assert.equal(link.carriedLines, 0)
            assert.equal(link.duplicates, 0)
            assert.equal(link.connects, 1)
        })

        it("a non-qos line whose ACK the V1Server withholds does not block the client's later qos wait writes (fault 5)", async function () {
            const { c, link } = await linked("g3")
            link.withholdAck = (_mid, payload) => payload === "no ack"
            await within(c.write("no ack", { qos: false }), BOUND, "the non-qos write")
            assert.equal(await within(link.readline(), BOUND, "the non-qos line at the V1Server"), "no ack")
            await within(c.write("after 1"), 2 * T + 1000, "a qos wait write after the un-ACKed non-qos line")
            await within(c.write("after 2"), BOUND, "a second qos wait write")
            assert.deepEqual(await readN(link, 2, "the later lines"), ["after 1", "after 2"])
            const n = link.rawLines.length
            await within(link.waitFor(() => link.rawLines.length >= n + 8), BOUND, "8 more lines at the V1Server")
            assert.equal(link.rawLines.filter((l) => l.endsWith("no ack")).length, 1, "the non-qos line was resent")
            assert.equal(link.connects, 1)
            assert.equal(c.connects, 1)
        })

        it("a line the client read just before close() is ACKed before its FIN: the V1Server does not send it again to the next session", async function () {
            const { vs, c, link } = await linked("g5")
            const acked = vs.write("g5", "read then close", { wait: false })
            assert.equal(await within(c.readline(), BOUND, "the line at the client"), "read then close")
            await c.close() // in the reader's own tick: the line's ACK is still owed (ACK on read)
            await within(acked, BOUND, "the V1Server's write ACKed by the closing client")
            const c2 = startClient(vs.port, "g5")
            await within(c2.connected(), BOUND, "the next session's link up")
            await within(vs.write("g5", "next session"), BOUND, "a write to the next session")
            assert.equal(await within(c2.readline(), BOUND, "the next session's first line"), "next session")
            assert.equal(link.resends, 0)
        })

        it("garbage lines and a UTF-8 character split across two TCP writes from the V1Server: the client goes on (faults 3, 4)", async function () {
            const { vs, c, link } = await linked("g4")
            await within(vs.write("g4", "before"), BOUND, "a write before the garbage")
            link.sendRaw("zz\n")
            link.sendRaw("zzhello\n")
            const payload = "split €uro, ✓ and 😀"
            const at = Buffer.from("01" + payload).indexOf(Buffer.from("€")) + 2 // inside €'s 3 bytes
            const mid = await within(link.writeSplit(payload, at), BOUND, "the split write")
            assert.equal(mid, 1)
            await within(link.waitAcked(mid), BOUND, "the split line ACKed by the client")
            await within(vs.write("g4", "after"), BOUND, "a qos write after the garbage is ACKed")
            assert.deepEqual(await readN(c, 3, "the client's lines"), ["before", payload, "after"])
            await within(c.write("reply"), BOUND, "the client's qos write is ACKed")
            assert.equal(await within(link.readline(), BOUND, "the reply"), "reply")
            assert.equal(link.connects, 1)
            assert.equal(c.connects, 1)
        })
    })
})
