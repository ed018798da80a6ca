// A client facing a hostile or broken server: whatever answers at its
// address may flood it, never read, or not speak the protocol at all. The
// client stays bounded, cuts and backs off, and other links in the same
// process go on. Every wait is on an event with a deadline.
import assert from "node:assert/strict"
import { connect, createServer, type Server as NetServer, type Socket } from "node:net"
import { pino } from "pino"
import { Client, Server } from "../../src/server/index.js"
import { closeAll, onCleanup, sendAndCheck, within } from "../kit/util.js"

const T = 1000

afterEach(closeAll)

interface Rogue {
    port: number
    accepts: number
    accepted(n: number, ms: number): Promise<void> // resolves once `n` sockets were accepted
}

// A listener that does `behave` with each socket it accepts.
async function rogue(behave: (s: Socket) => void): Promise<Rogue> {
    const socks: Socket[] = []
    const waiters: Array<() => void> = []
    const r: Rogue = {
        port: 0,
        accepts: 0,
        accepted: (n, ms) =>
            within(
                new Promise<void>((resolve) => {
                    const check = () => r.accepts >= n && resolve()
                    waiters.push(check)
                    check()
                }),
                ms,
                () => `${n} connects (got ${r.accepts})`
            ),
    }
    const srv: NetServer = createServer((s) => {
        socks.push(s)
        s.on("error", () => {})
        r.accepts++
        behave(s)
        for (const w of [...waiters]) w()
    })
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve))
    r.port = (srv.address() as { port: number }).port
    onCleanup(() => {
        for (const s of socks) s.destroy()
        return new Promise<void>((resolve) => srv.close(() => resolve()))
    })
    return r
}

// Writes `chunk` as fast as the socket takes it, for as long as it is open;
// reads nothing (no "data" listener: the client's writes pile up).
function flood(s: Socket, first: string, chunk: Buffer): void {
    s.write(first)
    const more = () => {
        while (!s.destroyed && s.write(chunk)) {}
    }
    s.on("drain", more)
    more()
}

function hexId(n: number): string {
    return (n < 16 ? "0" : "") + n.toString(16)
}

function repeat(line: string, bytes: number): Buffer {
    let s = ""
    while (s.length < bytes) s += line
    return Buffer.from(s)
}

interface Rec {
    level: number
    msg: string
    retryIn?: number
}

// A debug-level logger that keeps its records.
function records(): { logger: pino.Logger; recs: Rec[] } {
    const recs: Rec[] = []
    const logger = pino({ level: "debug", base: undefined }, { write: (s: string) => void recs.push(JSON.parse(s) as Rec) })
    return { logger, recs }
}

// Failures 1, 2, 4, 8... among the first n: how often a repeated failure is logged.
function doublings(n: number): number {
    return Math.floor(Math.log2(n)) + 1
}

function startClient(port: number, id: string, logger?: pino.Logger, key?: string): Client {
    const c = new Client({ id, port, timeout: T, backoffFirst: 50, backoffCap: 400, logger, key })
    onCleanup(() => c.close())
    return c.start()
}

describe("a client facing a hostile server", function () {
    this.timeout(60000)

    for (const [what, line] of [
        ["duplicates of one qos message", "05hello\n"],
        ["non-qos duplicates", "80hi\n"],
        ["ACKs for ids never sent", "7f\n"],
        ["keepalives only", "\n"],
    ] as const) {
        it(`a server that floods ${what} and never reads is cut and retried; another link in the process goes on`, async function () {
            const r = await rogue((s) => flood(s, "!hello epoch=00000001\n", repeat(line, 65536)))
            const victim = startClient(r.port, "victim")
            const pending = victim.write("kept") // waits across the cuts
            let settled = false
            void pending.then(
                () => (settled = true),
                () => (settled = true)
            )
            // An honest pair in the same process, while the flood goes on.
            const server = new Server({ port: 0, host: "127.0.0.1", timeout: T })
            onCleanup(() => server.close())
            await server.listen()
            const honest = startClient(server.port, "honest")
            await within(honest.connected(), 10000, "the honest link up")
            await sendAndCheck(honest, await server.clientConn("honest"), ["a", "b", "c"])
            // Throttled by its read budget, then dropped (cut, or silent while
            // throttled) and connected again: not held for ever.
            await r.accepted(2, 20000)
            assert.ok(victim.bounded.throttled >= 1, "throttled by its read budget")
            assert.equal(settled, false, "the pending write still waits")
            assert.ok(process.memoryUsage().heapUsed < 400e6, "heap bounded")
        })
    }

    it("a server that floods new lines at full speed to an application that reads each at once: the event loop gets a turn every so often", async function () {
        // Short new messages, one write each, ids cycling (and invalid UTF-8 in each).
        const r = await rogue((s) => {
            s.write("!hello epoch=00000001\n")
            let i = 0
            const more = () => {
                while (!s.destroyed && s.write(Buffer.concat([Buffer.from(hexId(i++ % 200)), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x0a])]))) {}
            }
            s.on("drain", more)
            more()
        })
        const c = startClient(r.port, "reader")
        void (async () => {
            for await (const _ of c);
        })()
        // Lines received between two turns of the event loop (setImmediate).
        let most = 0
        let last = 0
        let turns = 0
        await within(
            new Promise<void>((resolve) => {
                const turn = () => {
                    const n = c.stats.received
                    most = Math.max(most, n - last)
                    last = n
                    turns++
                    if (n >= 1000000) resolve()
                    else setImmediate(turn)
                }
                setImmediate(turn)
            }),
            60000,
            () => `a million lines (got ${c.stats.received})`
        )
        assert.ok(most < 50000, `at most ${most} lines in one turn of the event loop (${turns} turns)`)
    })

    it("lines just over the limit, without end: refused, cut and retried; a few warnings, not one per line", async function () {
        let line = ""
        while (line.length < 65540) line += "y"
        const r = await rogue((s) => flood(s, "!hello epoch=00000001\n", Buffer.from("05" + line + "\n")))
        const { logger, recs } = records()
        const c = startClient(r.port, "long", logger)
        await r.accepted(3, 30000)
        const warned = recs.filter((x) => x.level === 40 && /over the limit/.test(x.msg)).length
        assert.ok(c.stats.tooLong > 20, `over-long lines: ${c.stats.tooLong}`)
        assert.ok(warned <= 10, `${warned} warnings for ${c.stats.tooLong} over-long lines`)
    })

    for (const [what, first] of [
        ["an SSH banner", "SSH-2.0-OpenSSH_9.6\r\n"],
        ["an HTTP response", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"],
        ["binary garbage", "\x16\x03\x03\x00\x4a\x02\x00\n\xff\xfe\n"],
    ] as const) {
        it(`${what} on the port: never up, the reason logged once per back-off doubling, retried`, async function () {
            const r = await rogue((s) => s.end(Buffer.from(first, "latin1")))
            const { logger, recs } = records()
            const c = startClient(r.port, "stranger", logger)
            let ups = 0
            c.on("status", (up) => void (up && ups++))
            await r.accepted(8, 20000)
            assert.equal(ups, 0, "never up")
            assert.equal(c.connects, 0)
            const named = recs.filter((x) => x.level === 40 && /no devs-iot or micropython-iot server at this address/.test(x.msg))
            assert.ok(named.length >= 1, "the reason is logged")
            assert.ok(named.length <= doublings(r.accepts), `once per back-off doubling: ${named.length} warnings for ${r.accepts} connects`)
        })
    }

    it("one endless line (no newline, ever): the socket is closed and the client retries", async function () {
        const r = await rogue((s) => flood(s, "", Buffer.alloc(65536, 0x41)))
        const { logger, recs } = records()
        startClient(r.port, "endless", logger)
        await r.accepted(2, 20000)
        assert.ok(recs.some((x) => x.level === 40 && /no whole first line/.test(x.msg)), "named")
    })

    it("a server that accepts and closes at once, for ever: the back-off grows to its cap and stays there", async function () {
        const r = await rogue((s) => s.destroy())
        const { logger, recs } = records()
        startClient(r.port, "closed", logger)
        await r.accepted(12, 20000)
        const delays = recs.filter((x) => x.retryIn !== undefined).map((x) => x.retryIn!)
        assert.ok(delays.length >= 10, `delays logged: ${delays.length}`)
        for (const d of delays) assert.ok(d <= 400, `capped: ${d}`)
        // [d/2, d] with d doubling from 50: from the 5th on, d is the cap.
        for (const d of delays.slice(4)) assert.ok(d >= 200, `at the cap: ${delays.join(", ")}`)
        assert.ok(recs.some((x) => x.level === 30 && /closed before the handshake completed/.test(x.msg)), "the reason says no link came up")
    })

    describe("a keyed client", function () {
        const KEY = "11".repeat(32)
        const authFailures = (recs: Rec[]) => recs.filter((x) => x.level === 40 && /authentication failed/.test(x.msg))

        it("a valid-looking challenge, then garbage for the proof: refused, named, logged once per back-off doubling", async function () {
            const r = await rogue((s) => s.end("!hello epoch=srv auth=" + "ab".repeat(16) + " max=65536\n!auth mac=" + "zz".repeat(32) + "\n\xff\xfe garbage\n"))
            const { logger, recs } = records()
            const c = startClient(r.port, "k1", logger, KEY)
            let ups = 0
            c.on("status", (up) => void (up && ups++))
            await r.accepted(8, 20000)
            assert.equal(ups, 0, "never up")
            const named = authFailures(recs)
            assert.ok(named.length >= 1 && /proof does not verify/.test(named[0]!.msg), "named")
            assert.ok(named.length <= doublings(r.accepts), `once per back-off doubling: ${named.length} warnings for ${r.accepts} connects`)
        })

        it("a replay of a real server's earlier handshake (its challenge and proof): refused, named", async function () {
            const server = new Server({ port: 0, host: "127.0.0.1", timeout: T, keys: { k1: KEY } })
            onCleanup(() => server.close())
            await server.listen()
            // The first connection goes through to the real server and its
            // handshake (up to its proof) is recorded; later ones get that record.
            let record = ""
            let first: Socket | undefined
            let recorded = (): void => {}
            const done = new Promise<void>((resolve) => (recorded = resolve))
            const r = await rogue((s) => {
                if (r.accepts > 1) return void s.end(record)
                first = s
                const up = connect({ port: server.port, host: "127.0.0.1" })
                up.on("error", () => s.destroy())
                s.on("close", () => up.destroy())
                s.pipe(up)
                up.on("data", (b: Buffer) => {
                    if (record.includes("!auth ")) return
                    record += b.toString("latin1")
                    const at = record.indexOf("!auth ")
                    if (at >= 0 && record.indexOf("\n", at) >= 0) {
                        record = record.slice(0, record.indexOf("\n", at) + 1)
                        recorded()
                    }
                })
                up.pipe(s)
            })
            const { logger, recs } = records()
            const c = startClient(r.port, "k1", logger, KEY)
            await within(c.connected(), 10000, "up through the recorder")
            await within(done, 10000, "the handshake recorded")
            first!.destroy()
            await r.accepted(6, 20000)
            assert.equal(c.connects, 1, "never up on a replay")
            assert.ok(authFailures(recs).some((x) => /proof does not verify/.test(x.msg)), "named")
        })
    })
})
