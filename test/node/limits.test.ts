// Line-size limits and exception containment over real loopback sockets:
// every size limit at, below and above it in both directions (the cipher's
// limit with --encrypt, the limit in clear, a peer's announced limit), the
// settings checked at start, and an exception on one link (an application's
// listener, a failing seal) that closes that link only.
import assert from "node:assert/strict"
import { EventEmitter, once } from "node:events"
import { pino } from "pino"
import { Client, Server, type Connection } from "../../src/server/index.js"
import { deriveSession, MAX_ENCRYPTED_LINE } from "../../src/shared/index.js"
import { nodeCrypto } from "../../src/server/nodecrypto.js"
import { cleanup, closeAll, within } from "../kit/util.js"
import { raw } from "../kit/sockets.js"

const T = 1000
const KEY1 = "11".repeat(32)
const KEY2 = "22".repeat(32)

afterEach(closeAll)

// A logger whose lines a test can wait for.
function logSink() {
    const lines: string[] = []
    const ev = new EventEmitter()
    const logger = pino({ level: "warn" }, { write: (s: string) => void (lines.push(s), ev.emit("line", s)) })
    const waitFor = (re: RegExp, ms: number) => {
        const seen = lines.find((l) => re.test(l))
        if (seen) return Promise.resolve(seen)
        return within(
            new Promise<string>((resolve) => {
                const on = (s: string) => {
                    if (!re.test(s)) return
                    ev.off("line", on)
                    resolve(s)
                }
                ev.on("line", on)
            }),
            ms,
            `a log line matching ${re}`
        )
    }
    return { lines, logger, waitFor }
}

async function startServer(opts: ConstructorParameters<typeof Server>[0] = {}): Promise<Server> {
    const s = cleanup(new Server({ port: 0, host: "127.0.0.1", timeout: T, ...opts }))
    await s.listen()
    return s
}

function startClient(port: number, id: string, opts: Partial<ConstructorParameters<typeof Client>[0]> = {}): Client {
    return cleanup(new Client({ id, port, timeout: T, backoffFirst: 20, backoffCap: 100, ...opts })).start()
}

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
    try {
        await within(p, 5000, "write settles")
    } catch (e) {
        return e as { code?: string; message: string }
    }
    throw new Error("expected the write to reject")
}

// One line each way through a server Connection and its client.
async function roundTrip(conn: Connection, client: Client, line: string): Promise<void> {
    const atServer = conn.readline()
    await within(client.write(line), 10000, `client write of ${line.length} bytes`)
    assert.equal(await within(atServer, 10000, "server read"), line)
    const atClient = client.readline()
    await within(conn.write(line), 10000, `server write of ${line.length} bytes`)
    assert.equal(await within(atClient, 10000, "client read"), line)
}

describe("line limits and exception containment over loopback", function () {
    this.timeout(30000)

    it("encrypted link: 65,533 bytes (what AES-CCM can seal) go both ways; 65,534 rejects with ETOOLONG naming the limit, both ways; the server goes on", async function () {
        const server = await startServer({ keys: { k1: KEY1 }, encrypt: true })
        const client = startClient(server.port, "k1", { key: KEY1, encrypt: true })
        const plain = startClient(server.port, "p1")
        const conn = await within(server.clientConn("k1"), 5000, "k1 connected")
        await within(client.connected(), 5000, "client up")
        await roundTrip(conn, client, "y".repeat(65532))
        await roundTrip(conn, client, "x".repeat(65533))
        for (const [who, p] of [["server", conn.write("z".repeat(65534))], ["client", client.write("z".repeat(65534))]] as const) {
            const e = await rejection(p)
            assert.equal(e.code, "ETOOLONG", `${who}: ${e.message}`)
            assert.match(e.message, /65533/, `${who} names the limit`)
        }
        await roundTrip(conn, client, "after")
        const pconn = await within(server.clientConn("p1"), 5000, "p1 connected")
        await roundTrip(pconn, plain, "the plain link too")
        assert.equal(server.cfg.maxLineBytes, 65533)
    })

    it("sealed lines at the cipher's limit: 65,535 bytes seal and open; one more is refused by seal (ETOOLONG) and by open (no crypto exception)", function () {
        const t = { id: "k1", ns: "00".repeat(16), nc: "11".repeat(16), es: "e1", ec: "e2" }
        const tx = deriveSession(nodeCrypto, Buffer.from(KEY1, "hex"), "client", t, true)
        const rx = deriveSession(nodeCrypto, Buffer.from(KEY1, "hex"), "server", t, true)
        const wire = tx.seal(Buffer.from("00" + "x".repeat(MAX_ENCRYPTED_LINE)))
        assert.equal(wire.length, 2 + 8 + 2 * (65535 + 16) + 1)
        const o = rx.open(wire.subarray(0, -1))
        assert.ok(o.ok, o.reason)
        assert.equal(o.body.length, 65535)
        assert.throws(() => tx.seal(Buffer.from("01" + "x".repeat(MAX_ENCRYPTED_LINE + 1))), (e: Error & { code?: string }) => e.code === "ETOOLONG")
        const r = rx.open(Buffer.from("!e00000001" + "ab".repeat(65536 + 16)))
        assert.equal(r.ok, false)
        assert.match(r.reason, /longer than AES-CCM/)
    })

    it("clear link: 65,536 bytes go both ways; 65,537 rejects with ETOOLONG naming maxLineBytes", async function () {
        const server = await startServer()
        const client = startClient(server.port, "c1")
        const conn = await within(server.clientConn("c1"), 5000, "connected")
        await roundTrip(conn, client, "x".repeat(65536))
        for (const p of [conn.write("z".repeat(65537)), client.write("z".repeat(65537))]) {
            const e = await rejection(p)
            assert.equal(e.code, "ETOOLONG")
            assert.match(e.message, /65536/)
        }
    })

    it("settings are checked at start: maxLineBytes above the cipher's limit with encryption is a named ECONFIG", function () {
        for (const make of [
            () => new Server({ port: 0, encrypt: true, maxLineBytes: 65534 }),
            () => new Client({ id: "c", key: KEY1, encrypt: true, maxLineBytes: 65536 }),
        ]) {
            assert.throws(make, (e: Error & { code?: string }) => e.code === "ECONFIG" && /maxLineBytes \(6553[46]\) must be at most 65533 with encryption/.test(e.message))
        }
        assert.equal(new Server({ port: 0, encrypt: true, maxLineBytes: 65533 }).cfg.maxLineBytes, 65533)
    })

    it("a peer's announced limit: a longer write is refused up front (ETOOLONG naming it), at the limit it arrives; both directions, plain and keyed", async function () {
        const server = await startServer({ keys: { k1: KEY1 }, maxLineBytes: 3000 })
        for (const [id, opts] of [["small", {}], ["k1", { key: KEY1 }]] as const) {
            const client = startClient(server.port, id, { maxLineBytes: 1000, ...opts })
            const conn = await within(server.clientConn(id), 5000, `${id} connected`)
            await within(client.connected(), 5000, "client up")
            const e = await rejection(conn.write("x".repeat(1001)))
            assert.equal(e.code, "ETOOLONG")
            assert.match(e.message, /peer's limit \(1000/)
            await roundTrip(conn, client, "x".repeat(1000))
        }
        const big = startClient(server.port, "big", { maxLineBytes: 5000 })
        await within(server.clientConn("big"), 5000, "big connected")
        await within(big.connected(), 5000, "big up")
        const e = await rejection(big.write("x".repeat(3001)))
        assert.equal(e.code, "ETOOLONG")
        assert.match(e.message, /peer's limit \(3000/)
        const conn = server.connection("big")!
        const atServer = conn.readline()
        await within(big.write("x".repeat(3000)), 5000, "at the server's limit")
        assert.equal((await atServer).length, 3000)
    })

    it("an over-long line from a peer that ignores the announced limit is refused (!toolong), not left to be resent for ever", async function () {
        const server = await startServer({ maxLineBytes: 100 })
        const s = await raw(server.port, "old\n" + "\n".repeat(10))
        const seen = (text: string) => new Promise<void>((resolve) => {
            const check = () => s.text.includes(text) && (s.off("data", check), resolve())
            s.on("data", check)
            check()
        })
        await within(seen("!hello"), 5000, "the server's hello")
        assert.match(s.text, /!hello epoch=\S+ max=100\n/)
        const refused = seen("!toolong id=00 max=100\n")
        s.write("!hello epoch=e1 max=2048\n00" + "x".repeat(101) + "\n01ok\n")
        await within(refused, 5000, "the refusal")
        const conn = server.connection("old")!
        assert.equal(await within(conn.readline(), 5000, "the next line"), "ok")
        assert.equal(conn.stats.tooLong, 1)
    })

    it("an exception in an application's listener closes only that link, and is logged; other links carry on", async function () {
        const sink = logSink()
        const server = await startServer({ logger: sink.logger })
        server.on("connect", (c: Connection) => {
            if (c.id === "bad") throw new Error("application bug on connect")
        })
        server.on("warning", () => {
            throw new Error("application bug on warning")
        })
        const good = startClient(server.port, "good")
        const gconn = await within(server.clientConn("good"), 5000, "good connected")
        startClient(server.port, "bad")
        const line = await sink.waitFor(/application bug on connect/, 5000)
        assert.match(line, /"client":"bad"/)
        assert.match(line, /connection closed/)
        // A warning whose listener throws: logged, nothing else happens.
        await raw(server.port, "\x01\n")
        await sink.waitFor(/a \\"warning\\" listener threw: application bug on warning/, 5000)
        for (let i = 0; i < 20; i++) await roundTrip(gconn, good, `line ${i}`)
    })

    it("a seal that throws on one keyed link: that link is closed and logged, reconnects, and its line arrives; the other keyed link carries on", async function () {
        const sink = logSink()
        const server = await startServer({ logger: sink.logger, keys: { k1: KEY1, k2: KEY2 }, encrypt: true })
        const c1 = startClient(server.port, "k1", { key: KEY1 })
        const c2 = startClient(server.port, "k2", { key: KEY2 })
        const conn1 = await within(server.clientConn("k1"), 5000, "k1 connected")
        const conn2 = await within(server.clientConn("k2"), 5000, "k2 connected")
        await within(c1.connected(), 5000, "k1 up")
        // Break this socket's session only: the next one gets a new session.
        const session = (conn1 as unknown as { link: { conn: { session: { seal: () => Buffer } } } }).link.conn.session
        session.seal = () => {
            throw new Error("seal failed (test)")
        }
        const downs = once(conn1, "status")
        const atClient = c1.readline()
        const written = conn1.write("survives")
        const line = await sink.waitFor(/seal failed \(test\)/, 5000)
        assert.match(line, /"client":"k1"/)
        await within(downs, 5000, "k1 down")
        for (let i = 0; i < 10; i++) await roundTrip(conn2, c2, `k2 line ${i}`)
        assert.equal(await within(atClient, 10000, "the line after the reconnect"), "survives")
        await within(written, 5000, "its write completes")
    })
})
