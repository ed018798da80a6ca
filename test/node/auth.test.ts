// Authentication over real loopback sockets: keyed clients and server, each attack of
// an on-path attacker (wrong key, replayed, injected and reordered lines, a
// forged take-over, a keyed id connecting plain), the key file, and that v1
// peers and un-keyed devs-iot clients are unaffected.
import assert from "node:assert/strict"
import { once } from "node:events"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Client, Server, parseKeys } from "../../src/server/index.js"
import { cleanup, cli, closeAll, within, exchange, sendAndCheck } from "../kit/util.js"
import { nextWarning, raw, warnings } from "../kit/sockets.js"
import { pino } from "pino"
import { isSealedMessage, Mitm } from "../kit/mitm.js"

const T = 400
const KEY = "11".repeat(32)
const OTHER = "22".repeat(32)

afterEach(closeAll)

async function startServer(opts: ConstructorParameters<typeof Server>[0] = {}): Promise<Server> {
    const s = cleanup(new Server({ port: 0, host: "127.0.0.1", timeout: T, keys: { k1: KEY }, ...opts }))
    await s.listen()
    return s
}

function startClient(port: number, id: string, opts: Partial<ConstructorParameters<typeof Client>[0]> = {}): Client {
    return cleanup(new Client({ id, port, timeout: T, backoffFirst: 20, backoffCap: 100, ...opts })).start()
}

async function startMitm(server: Server): Promise<Mitm> {
    const m = cleanup(new Mitm(server.port))
    await m.listen()
    return m
}

describe("authentication over loopback", function () {
    it("keyed client and server: authenticate, qos lines both ways, the link is devs-iot", async function () {
        const server = await startServer()
        const w = warnings(server)
        const client = startClient(server.port, "k1", { key: KEY })
        await within(client.connected(), 3000, "client up")
        await exchange(server, client, "a", 20)
        const conn = server.connection("k1")!
        const back = within(client.readline(), 3000, "reply")
        await within(conn.write("reply"), 3000, "server write")
        assert.equal(await back, "reply")
        assert.equal(client.peer, "devs-iot")
        assert.deepEqual(w, [])
    })

    it("500 qos lines each way over a keyed and an encrypted link arrive once and in order (their cost: npm run bench, latency)", async function () {
        this.timeout(60000)
        for (const encrypt of [false, true]) {
            const server = await startServer()
            const client = startClient(server.port, "k1", { key: KEY, encrypt })
            await within(client.connected(), 3000, "client up")
            const conn = await server.clientConn("k1")
            const lines = Array.from({ length: 500 }, (_, i) => `t=21.50 h=40.10 p=1013.25 n=${i}`)
            await sendAndCheck(client, conn, lines)
            await sendAndCheck(conn, client, lines)
            await client.close()
            await server.close()
        }
    })

    it("wrong key: refused with one warning naming the id and 'wrong key'; nothing delivered", async function () {
        const server = await startServer()
        const warned = nextWarning(server, "auth-failed")
        const logged: string[] = []
        let onLog = () => {}
        const said = new Promise<void>((r) => (onLog = r))
        const logger = pino({ level: "warn" }, { write: (s: string) => (logged.push(s), onLog()) })
        const client = startClient(server.port, "k1", { key: OTHER, logger })
        void client.write("never").catch(() => {})
        await within(said, 3000, "the client's log line")
        assert.match(logged[0]!, /the server refused this connection: the server did not accept this client's key .*only a hint/)
        const w = await warned
        assert.equal(w.id, "k1")
        assert.match(w.detail, /wrong key: the client's proof does not verify/)
        assert.equal(client.status(), false)
        assert.equal(server.connection("k1")!.connects, 0)
        assert.equal(server.connection("k1")!.stats.received, 0)
    })

    it("the line limit (max=) changed on the path, in the challenge or in the answer: the handshake fails and no write fails on it; untouched, the link comes up", async function () {
        const server = await startServer()
        const mitm = await startMitm(server)
        let tamper: "down" | "up" | "" = "down"
        let changed = 0
        mitm.rewrite = (l, dir) => {
            const t = l.toString("utf-8")
            if (dir !== tamper || !t.startsWith("!hello ") || !t.includes(" auth=") || !t.includes(" max=")) return [l]
            changed++
            return [Buffer.from(t.replace(/ max=\d+/, " max=64"))]
        }
        let ups = 0
        const client = startClient(mitm.port, "k1", { key: KEY, onStatus: (up) => up && ups++ })
        const written = client.write("x".repeat(100))
        assert.match((await within(nextWarning(server, "auth-failed"), 3000, "challenge changed")).detail, /proof does not verify/)
        tamper = "up"
        const before = changed
        assert.match((await within(nextWarning(server, "auth-failed"), 3000, "answer changed")).detail, /proof does not verify/)
        assert.ok(changed > before, "the answer was changed")
        assert.equal(ups, 0, "never up on a changed limit")
        tamper = ""
        await within(client.connected(), 3000, "up once the lines pass untouched")
        await within(written, 3000, "the 100-byte line was never failed on the forged limit of 64")
        const conn = await within(server.clientConn("k1"), 3000, "connected")
        assert.equal(await conn.readline(), "x".repeat(100))
    })

    it("the client refuses a server that does not hold its key (the server's proof is checked)", async function () {
        const server = await startServer({ keys: { k1: OTHER } })
        let ups = 0
        const client = startClient(server.port, "k1", { key: KEY, onStatus: (up) => up && ups++ })
        await nextWarning(server, "auth-failed")
        assert.equal(ups, 0)
        await client.close()
        // And a server with no key for the id (no challenge): the keyed client never goes up.
        const plain = cleanup(new Server({ port: 0, host: "127.0.0.1", timeout: T }))
        await plain.listen()
        let ups2 = 0
        const logged: string[] = []
        let onLog = () => {}
        const refusedPlain = new Promise<void>((r) => (onLog = r))
        const logger = pino({ level: "warn" }, { write: (s: string) => (logged.push(s), onLog()) })
        const c2 = startClient(plain.port, "k1", { key: KEY, logger, onStatus: (up) => up && ups2++ })
        await within(refusedPlain, 3000, "the keyed client's log line")
        assert.match(logged.join(""), /authentication failed: the server did not ask this keyed client to authenticate/)
        assert.equal(ups2, 0, "a keyed client is never up with a server that did not authenticate")
        assert.equal(c2.status(), false)
    })

    it("replayed line: the server closes (sequence), the replay is not delivered, the link recovers exactly once", async function () {
        const server = await startServer()
        const mitm = await startMitm(server)
        let first: Buffer | undefined
        let count = 0
        mitm.rewrite = (l, dir) => {
            if (dir !== "up" || !isSealedMessage(l)) return [l]
            count++
            if (count === 1) first = Buffer.from(l)
            if (count === 2 && first) return [l, first] // replay message 1 after message 2
            return [l]
        }
        const warned = nextWarning(server, "auth-failed")
        const client = startClient(mitm.port, "k1", { key: KEY })
        const conn = await within(server.clientConn("k1"), 3000, "up")
        const writes = [0, 1, 2, 3].map((i) => client.write(`r-${i}`))
        const w = await warned
        assert.equal(w.id, "k1")
        assert.match(w.detail, /sequence 0 where [1-9][0-9]* was due/)
        await within(Promise.all(writes), 5000, "writes complete after reconnect")
        const got: string[] = []
        for (let i = 0; i < 4; i++) got.push(await within(conn.readline(), 3000, "read"))
        assert.deepEqual(got, ["r-0", "r-1", "r-2", "r-3"])
    })

    it("reordered lines: closed, nothing out of order delivered, every line once", async function () {
        const server = await startServer()
        const mitm = await startMitm(server)
        let held: Buffer | undefined
        let count = 0
        mitm.rewrite = (l, dir) => {
            if (dir !== "up" || !isSealedMessage(l)) return [l]
            count++
            if (count === 1) {
                held = Buffer.from(l)
                return []
            }
            if (count === 2 && held) return [l, held]
            return [l]
        }
        const warned = nextWarning(server, "auth-failed")
        const client = startClient(mitm.port, "k1", { key: KEY })
        const conn = await within(server.clientConn("k1"), 3000, "up")
        const writes = [0, 1, 2].map((i) => client.write(`o-${i}`, { wait: false }))
        assert.match((await warned).detail, /sequence 1 where 0 was due/)
        await within(Promise.all(writes), 5000, "writes complete")
        const got: string[] = []
        for (let i = 0; i < 3; i++) got.push(await within(conn.readline(), 3000, "read"))
        assert.deepEqual([...got].sort(), ["o-0", "o-1", "o-2"])
    })

    it("injected lines: a plain message up, a forged sealed ACK down; each end closes, nothing injected is delivered", async function () {
        const server = await startServer()
        const mitm = await startMitm(server)
        const client = startClient(mitm.port, "k1", { key: KEY })
        const conn = await within(server.clientConn("k1"), 3000, "up")
        await within(client.connected(), 3000, "client up")
        const warned = nextWarning(server, "auth-failed")
        const again = new Promise<void>((r) => client.on("status", (up: boolean) => up && r()))
        mitm.inject("up", "05evil\n")
        const w = await warned
        assert.equal(w.id, "k1")
        assert.match(w.detail, /unauthenticated line on an authenticated link/)
        await within(again, 3000, "client up again on a new connection")
        assert.equal(mitm.connections(), 2)
        const down = new Promise<string>((r) => client.once("status", (up, reason) => !up && r(reason ?? "")))
        // A forged ACK for the next id: it would make the writer believe its line was delivered.
        const pending = client.write("needs-a-real-ack")
        mitm.inject("down", "!m00000009" + "0".repeat(32) + "00\n")
        assert.match(await within(down, 3000, "client closes"), /authentication: (bad MAC|sequence)/)
        await within(pending, 5000, "the write completes for real after the reconnect")
        assert.equal(await within(conn.readline(), 3000, "read"), "needs-a-real-ack")
        assert.equal(conn.stats.received, 1, "nothing injected delivered")
    })

    it("forged take-over of a keyed id: a stranger with the id but not the key never touches the live link", async function () {
        const server = await startServer()
        const client = startClient(server.port, "k1", { key: KEY })
        await within(client.connected(), 3000, "up")
        let downs = 0
        client.on("status", (up: boolean) => !up && downs++)
        // A devs-iot impostor answering the challenge with a made-up proof.
        const warned = nextWarning(server, "auth-failed")
        const s = await raw(server.port, "k1\n" + "\n".repeat(10))
        await within(
            (async () => {
                while (!s.text.includes("auth=")) await once(s, "data")
            })(),
            2000,
            "challenge"
        )
        s.write("!hello epoch=x auth=" + "ab".repeat(16) + " mac=" + "cd".repeat(32) + "\n")
        assert.match((await warned).detail, /wrong key/)
        // A v1 impostor and an un-keyed devs-iot one: refused as plain.
        const refused = nextWarning(server, "auth-refused")
        await raw(server.port, "k1\n00hello\n")
        assert.match((await refused).detail, /v1 client/)
        const refused2 = nextWarning(server, "auth-refused")
        const c2 = startClient(server.port, "k1")
        assert.match((await refused2).detail, /without a key/)
        await c2.close()
        await exchange(server, client, "still", 3)
        assert.equal(downs, 0, "the live link never went down")
        // The real key takes over a live link at once.
        const takeOver = nextWarning(server, "take-over")
        const c3 = startClient(server.port, "k1", { key: KEY })
        await within(c3.connected(), 3000, "newcomer up")
        assert.match((await takeOver).detail, /authenticated connection replaces/)
    })

    it("keyed id connecting plain: refused; allowed when listed (devs-iot and v1)", async function () {
        const server = await startServer({ keys: { k1: KEY, k2: KEY }, allowPlain: ["k2"] })
        const refused = nextWarning(server, "auth-refused")
        startClient(server.port, "k1")
        assert.equal((await refused).id, "k1")
        const c2 = startClient(server.port, "k2")
        await within(c2.connected(), 3000, "allowed plain")
        assert.equal(c2.peer, "devs-iot")
        await exchange(server, c2, "p", 3)
        await c2.close()
        // A v1 board on an allowed keyed id.
        const s = await raw(server.port, "k2\n")
        const conn = server.connection("k2")!
        const up = new Promise<void>((r) => conn.on("status", (u: boolean) => u && r()))
        const tick = setInterval(() => s.write("\n"), 100)
        try {
            await within(up, 3000, "v1 up")
        } finally {
            clearInterval(tick)
        }
        assert.equal(conn.peer, "v1")
        s.write("0042\n")
        assert.equal(await within(conn.readline(), 3000, "v1 line"), "42")
        assert.ok(!s.text.includes("!"), "no extension line reached the v1 board: " + JSON.stringify(s.text))
    })

    it("a v1 peer and an un-keyed devs-iot client of a server with keys are unaffected", async function () {
        const server = await startServer()
        const c = startClient(server.port, "free")
        await within(c.connected(), 3000, "up")
        assert.equal(c.peer, "devs-iot")
        await exchange(server, c, "u", 3)
        const s = await raw(server.port, "v1board\n")
        const conn = await new Promise<import("../../src/server/index.js").Connection>((r) => {
            const tick = setInterval(() => s.write("\n"), 100)
            server.clientConn("v1board").then((x) => {
                clearInterval(tick)
                r(x)
            })
        })
        s.write("00hi\n")
        assert.equal(await within(conn.readline(), 3000, "v1 line"), "hi")
        assert.ok(!s.text.includes("!"), "no extension line reached the v1 board")
    })

    it("encryption: no payload in clear on the wire, both directions", async function () {
        const server = await startServer({ encrypt: true })
        const mitm = await startMitm(server)
        let seen = ""
        mitm.rewrite = (l) => {
            seen += l.toString() + "\n"
            return [l]
        }
        const client = startClient(mitm.port, "k1", { key: KEY, encrypt: true })
        await exchange(server, client, "secret-up", 3)
        const conn = server.connection("k1")!
        const r = client.readline()
        await within(conn.write("secret-down"), 3000, "down")
        assert.equal(await r, "secret-down")
        assert.ok(!seen.includes("secret"), "payload in clear")
        assert.ok(seen.includes("!e00000000"), "encrypted lines on the wire")
    })

    it("key file: format, errors naming file:line", function () {
        const k = parseKeys(`# comment\n\nboard 1 ${KEY}\nk2\t${OTHER.toUpperCase()}\n`, "keys.txt")
        assert.deepEqual([...k.keys()], ["board 1", "k2"])
        assert.equal(k.get("k2")![0]!.toString("hex"), OTHER)
        assert.throws(() => parseKeys(`a ${KEY}\nb 1234\n`, "keys.txt"), /^KeyFileError: keys.txt:2: the key of "b" must be 64 hex digits \(32 bytes\), got 4 characters$/)
        assert.throws(() => parseKeys(`${KEY}\n`, "k"), /k:1: expected "<id> <key> /)
        assert.throws(() => parseKeys(`a ${KEY}\na ${OTHER}\n`, "k"), /k:2: id "a" is listed twice/)
    })

    it("CLI: --keys, SIGHUP reload (a bad file keeps the old keys and says why), --key", async function () {
        this.timeout(30000)
        const dir = mkdtempSync(join(tmpdir(), "devs-iot-keys-"))
        const file = join(dir, "keys")
        writeFileSync(file, `k1 ${KEY}\n`)
        const srv = cli(["server", "--port", "0", "--host", "127.0.0.1", "--keys", file, "--timeout", String(T)])
        try {
            const m = await srv.waitFor(/"port":(\d+)|port: (\d+)/, 10000, "stderr")
            const port = Number(m[1] ?? m[2])
            await srv.waitFor(/keys loaded/, 5000, "stderr")
            writeFileSync(file, `k1 ${KEY}\nk2 nothex\n`)
            srv.child.kill("SIGHUP")
            await srv.waitFor(/keys not reloaded, the old ones stay in use: .*keys:2: the key of "k2" must be 64 hex digits/, 5000, "stderr")
            const a = startClient(port, "k1", { key: KEY })
            await within(a.connected(), 3000, "old key still works")
            await a.close()
            writeFileSync(file, `k1 ${OTHER}\n`)
            srv.child.kill("SIGHUP")
            await srv.waitFor(/keys reloaded/, 5000, "stderr")
            const b = startClient(port, "k1", { key: OTHER })
            await within(b.connected(), 3000, "new key works")
            await b.close()
            const bad = startClient(port, "k1", { key: KEY })
            await srv.waitFor(/auth-failed.*k1|k1.*auth-failed|wrong key/, 5000, "stderr")
            await bad.close()
        } finally {
            srv.stop()
        }
        const c = cli(["client", "--id", "x", "--key", "abc"])
        try {
            assert.equal(await within(c.exited, 10000, "exit"), 2)
            assert.match(c.stderr, /--key must be 64 hex digits \(32 bytes\), got 3 characters/)
        } finally {
            c.stop()
        }
    })
})
