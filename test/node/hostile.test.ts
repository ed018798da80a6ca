// Hostile input: strangers on the LAN. Attackers connect from
// other loopback addresses (127.0.0.2, ...: net.connect's localAddress) so the
// per-address limits see them apart from the honest clients on 127.0.0.1.
// Every wait is on an event with a deadline; nothing asserts a speed.
import assert from "node:assert/strict"
import { once } from "node:events"
import { connect, type Socket } from "node:net"
import { pino } from "pino"
import { Admission, LogBudget } from "../../src/server/admission.js"
import { Client, Server, type HostileLimits, type Warning } from "../../src/server/index.js"
import { closeAll, freePort, onCleanup, within } from "../kit/util.js"
import { warnings } from "../kit/sockets.js"

const T = 1000

afterEach(closeAll)

async function startServer(limits: HostileLimits = {}, extra: Partial<ConstructorParameters<typeof Server>[0]> = {}): Promise<Server> {
    const s = new Server({ port: 0, host: "127.0.0.1", timeout: T, limits, ...extra })
    onCleanup(() => s.close())
    await s.listen()
    return s
}

function startClient(server: Server, id: string): Client {
    const c = new Client({ id, port: server.port, timeout: T })
    onCleanup(() => c.close())
    return c.start()
}

interface Attacker extends Socket {
    gone: Promise<void>
}

// A raw socket from `from` (a loopback address); resolves once connected.
async function attacker(server: Server, from: string): Promise<Attacker> {
    const s = connect({ port: server.port, host: "127.0.0.1", localAddress: from }) as Attacker
    s.gone = new Promise((r) => s.once("close", () => r()))
    s.on("error", () => {})
    s.on("data", () => {})
    onCleanup(() => void s.destroy())
    await within(Promise.race([once(s, "connect"), s.gone]), 5000, `connect from ${from}`)
    return s
}

function warningFrom(server: Server, from: string, code?: Warning["code"]): Promise<Warning> {
    return new Promise((resolve) => {
        const on = (w: Warning) => {
            if (!w.address?.startsWith(from + ":") && w.address !== from) return
            if (code && w.code !== code) return
            server.off("warning", on)
            resolve(w)
        }
        server.on("warning", on)
    })
}

function fromAddr(list: Warning[], from: string): Warning[] {
    return list.filter((w) => w.address?.startsWith(from + ":") || w.address === from)
}

// An honest link stays useful: qos lines both ways, all delivered, in order.
async function exchange(server: Server, c: Client, n: number): Promise<void> {
    const conn = await within(server.clientConn(c.id), 10000, "honest client connected")
    const up = (async () => {
        for (let i = 0; i < n; i++) await c.write(`u${i}`)
    })()
    const down = (async () => {
        for (let i = 0; i < n; i++) await conn.write(`d${i}`)
    })()
    const gotUp: string[] = []
    const gotDown: string[] = []
    await within(
        Promise.all([
            up,
            down,
            (async () => {
                for (let i = 0; i < n; i++) gotUp.push(await conn.readline())
            })(),
            (async () => {
                for (let i = 0; i < n; i++) gotDown.push(await c.readline())
            })(),
        ]),
        30000,
        `${n} qos lines each way`
    )
    assert.deepEqual(gotUp, Array.from({ length: n }, (_, i) => `u${i}`))
    assert.deepEqual(gotDown, Array.from({ length: n }, (_, i) => `d${i}`))
}

describe("hostile input", function () {
    this.timeout(40000)

    describe("admission bookkeeping (pure)", function () {
        const limits = { maxPending: 4, maxPendingPerSource: 3, penaltyOffences: 2, penaltyWindow: 1000, penalizedPending: 1 }

        it("caps per source and in all; a source is penalized after its offences, then forgiven", function () {
            const a = new Admission<number>(limits)
            assert.deepEqual([1, 2, 3].map((i) => a.add("x", i, 0).ok), [true, true, true])
            assert.equal(a.add("x", 4, 0).ok, false)
            assert.equal(a.add("y", 5, 0).ok, true)
            assert.equal(a.add("z", 6, 0).ok, false, "global cap, nobody penalized: refused")
            a.remove("x", 1)
            a.remove("x", 1)
            assert.equal(a.pending, 3)
            assert.equal(a.offence("y", 10), false)
            assert.equal(a.offence("y", 20), true, "second offence penalizes")
            assert.equal(a.add("y", 7, 30).ok, false, "a penalized source holds at most penalizedPending")
            assert.equal(a.penalized("y", 1500), true, "the previous window still counts")
            assert.equal(a.penalized("y", 2600), false, "two quiet windows forgive")
            a.sweep(5000)
            assert.equal(a.pendingOf("y"), 1)
        })

        it("when full, a newcomer evicts the oldest socket of a penalized source", function () {
            const a = new Admission<string>({ ...limits, penalizedPending: 3 })
            a.offence("bad", 0)
            a.offence("bad", 0)
            for (const i of ["b1", "b2", "b3"]) assert.equal(a.add("bad", i, 0).ok, true)
            assert.equal(a.add("good", "g1", 0).ok, true)
            const r = a.add("good", "g2", 0)
            assert.deepEqual(r, { ok: true, evicted: "b1", evictedFrom: "bad" })
            assert.equal(a.pending, 4)
        })

        it("the log budget refuses beyond its rate (per second, or per period) and counts what it refused", function () {
            const b = new LogBudget(2)
            assert.deepEqual([b.take("a", 0), b.take("a", 0), b.take("a", 0), b.take("b", 0)], [true, true, false, false])
            assert.equal(b.take("a", 500), true, "refilled at 2/s")
            assert.deepEqual(b.takeSkipped(), { a: 1, b: 1 })
            assert.equal(b.takeSkipped(), undefined)
            // One line every 5 s (accept failures), with what was not logged on the next one.
            const slow = new LogBudget(1, 5000)
            assert.deepEqual([slow.pass("EMFILE", 0), slow.pass("EMFILE", 1000), slow.pass("EMFILE", 4000)], [{}, undefined, undefined])
            assert.deepEqual(slow.pass("EMFILE", 5000), { unlogged: { EMFILE: 2 } })
        })
    })

    describe("options", function () {
        it("bad limits are refused with the option's name", function () {
            assert.throws(() => new Server({ limits: { maxIdBytes: 100 } }), /maxIdBytes must be a whole number from 256 to 65536, got 100/)
            assert.throws(() => new Server({ limits: { idTimeout: 0 } }), /idTimeout must be a whole number from 100/)
            assert.throws(() => new Server({ limits: { maxPending: 1.5 } }), /maxPending must be a whole number/)
            assert.throws(() => new Server({ limits: { maxEarlyLineRate: "9" as unknown as number } }), /maxEarlyLineRate must be a whole number from 16 to 1000000, got "9"/)
            assert.throws(() => new Server({ limits: { maxPendingPerSource: 4, penalizedPending: 5 } }), /penalizedPending \(5\) must be at most maxPendingPerSource \(4\)/)
            const s = new Server({ timeout: 3000 })
            assert.equal(s.limits.idTimeout, 6000, "default: 2 x timeout")
            assert.equal(s.limits.maxIdBytes, 256)
        })
    })

    describe("offenders are cut and logged once; others do not notice", function () {
        it("an oversized id line (100 KB, no newline) is cut as bad-id", async function () {
            const server = await startServer()
            const list = warnings(server)
            const honest = startClient(server, "honest")
            await within(server.clientConn("honest"), 5000, "honest up")
            const a = await attacker(server, "127.0.0.2")
            a.write(Buffer.alloc(100000, 0x41))
            await within(a.gone, 5000, "attacker cut")
            const mine = fromAddr(list, "127.0.0.2")
            assert.deepEqual(mine.map((w) => w.code), ["bad-id"])
            assert.match(mine[0]!.detail, /longer than 256 bytes/)
            await exchange(server, honest, 20)
        })

        it("an id of up to maxIdBytes is accepted (a long id an original board may use)", async function () {
            const server = await startServer({ maxIdBytes: 1024 })
            const id = "board-" + "x".repeat(900)
            const a = await attacker(server, "127.0.0.1")
            a.write(id + "\n\n")
            await within(server.clientConn(id), 5000, "long id accepted")
        })

        it("client ids are capped (maxClients): a stranger's new id beyond it is refused; known ids and expected ones still come in", async function () {
            const server = await startServer({ maxClients: 3 }, { expected: ["a", "b", "vip"] })
            for (const id of ["a", "b"]) {
                const s = await attacker(server, "127.0.0.1")
                s.write(id + "\n\n")
                await within(server.clientConn(id), 5000, `${id} up`)
            }
            const x = await attacker(server, "127.0.0.3")
            x.write("x1\n\n")
            await within(server.clientConn("x1"), 5000, "x1 fills the table")
            const refused = warningFrom(server, "127.0.0.3", "too-many-clients")
            const y = await attacker(server, "127.0.0.3")
            y.write("x2\n\n")
            const w = await within(refused, 5000, "too-many-clients warning")
            assert.equal(w.id, "x2")
            await within(y.gone, 5000, "x2 cut")
            assert.equal(server.connection("x2"), undefined)
            const v = await attacker(server, "127.0.0.1")
            v.write("vip\n\n")
            await within(server.clientConn("vip"), 5000, "an expected id still comes in")
        })

        it("garbage bytes: control bytes, invalid UTF-8, an empty line are each cut as bad-id", async function () {
            const server = await startServer()
            const list = warnings(server)
            const inputs = [Buffer.from([0x01, 0x02, 0xff, 0x0a]), Buffer.from([0x41, 0xc3, 0x28, 0x42, 0x0a]), Buffer.from("\n"), Buffer.from("\x1b[2J\r\n")]
            for (const b of inputs) {
                const a = await attacker(server, "127.0.0.3")
                a.write(b)
                await within(a.gone, 5000, `cut after ${b.toString("hex")}`)
            }
            const codes = fromAddr(list, "127.0.0.3").map((w) => w.code)
            assert.deepEqual(codes, ["bad-id", "bad-id", "bad-id", "bad-id"])
            assert.deepEqual(server.connections(), [], "no Connection made for garbage")
        })

        it("slowloris: a peer dribbling its id one byte at a time is cut at the deadline, not kept alive by its bytes", async function () {
            const server = await startServer({ idTimeout: 600 })
            const cut = warningFrom(server, "127.0.0.4")
            const a = await attacker(server, "127.0.0.4")
            let sent = 0
            const drip = setInterval(() => {
                if (!a.destroyed) (a.write("s"), sent++)
            }, 50)
            try {
                await within(a.gone, 10000, "slowloris cut")
            } finally {
                clearInterval(drip)
            }
            const w = await within(cut, 1000, "warning")
            assert.equal(w.code, "id-timeout")
            assert.ok(sent > 1, "it kept sending bytes until the cut")
            assert.ok(sent < 256, "cut before its id could be too long")
        })

        it("a line flood right after the id is cut before the link is up, and its Connection forgotten", async function () {
            const server = await startServer()
            const list = warnings(server)
            const honest = startClient(server, "honest")
            await within(server.clientConn("honest"), 5000, "honest up")
            const a = await attacker(server, "127.0.0.5")
            a.write("flooder\n" + "zz\n".repeat(5000))
            await within(a.gone, 5000, "flooder cut")
            const mine = fromAddr(list, "127.0.0.5")
            assert.equal(mine.filter((w) => w.code === "flood").length, 1, "logged once")
            assert.equal(server.connection("flooder"), undefined)
            await exchange(server, honest, 20)
        })

        it("not a flood: a client that connects with a full window of queued writes, and a v1 board that sends 200 lines once the server spoke", async function () {
            const port = await freePort()
            const c = new Client({ id: "queued", port, timeout: T })
            onCleanup(() => c.close())
            c.start()
            const writes = Array.from({ length: 300 }, (_, i) => c.write(`q${i}`, { wait: false }))
            const server = await startServer({}, { port })
            const list = warnings(server)
            const conn = await within(server.clientConn("queued"), 5000, "queued client up")
            await within(Promise.all(writes), 10000, "300 queued writes ACKed")
            for (let i = 0; i < 300; i++) await conn.readline()
            const v1 = await attacker(server, "127.0.0.1")
            let text = ""
            const spoke = new Promise<void>((r) => v1.on("data", (b: Buffer) => ((text += b.toString()), r())))
            v1.write("v1board\n\n")
            await within(spoke, 5000, "server's first line")
            v1.write(Array.from({ length: 200 }, (_, i) => `${(i + 1).toString(16).padStart(2, "0")}m${i}\n`).join(""))
            const vconn = await within(server.clientConn("v1board"), 5000, "v1 up")
            for (let i = 0; i < 200; i++) assert.equal(await within(vconn.readline(), 5000, `v1 line ${i}`), `m${i}`)
            assert.deepEqual(list.filter((w) => w.code === "flood"), [])
            assert.equal(c.connects, 1)
        })

        it("many pending connections from one address: capped; the address is penalized after its offences; 127.0.0.1 unaffected", async function () {
            // idTimeout well above the time 50 connects take on a loaded machine:
            // the 20 admitted must still be pending when the other 30 arrive.
            const server = await startServer({ maxPendingPerSource: 20, penalizedPending: 2, penaltyOffences: 5, idTimeout: 3000 })
            const list = warnings(server)
            const socks = await Promise.all(Array.from({ length: 50 }, () => attacker(server, "127.0.0.6")))
            // 30 are refused at accept; the 20 admitted time out (20 offences).
            await within(Promise.all(socks.map((s) => s.gone)), 10000, "all 50 closed")
            const mine = fromAddr(list, "127.0.0.6")
            assert.equal(mine.filter((w) => w.code === "pending-limit").length, 30)
            assert.equal(mine.filter((w) => w.code === "id-timeout").length, 20)
            assert.equal(mine.filter((w) => w.code === "penalized").length, 1)
            // Penalized: now only 2 at a time.
            const refused = warningFrom(server, "127.0.0.6", "pending-limit")
            const more = await Promise.all(Array.from({ length: 3 }, () => attacker(server, "127.0.0.6")))
            const w = await within(refused, 5000, "third refused")
            assert.match(w.detail, /misbehaved/)
            for (const s of more) s.destroy()
            // Meanwhile 50 honest clients from 127.0.0.1 get in.
            const ids = Array.from({ length: 50 }, (_, i) => `h${i}`)
            for (const id of ids) startClient(server, id)
            await within(server.waitAll(ids), 20000, "honest clients up")
            assert.equal(fromAddr(list, "127.0.0.1").length, 0, "no warning about 127.0.0.1")
        })

        it("the global cap: when full, a newcomer evicts a penalized address's socket", async function () {
            const server = await startServer({ maxPending: 6, maxPendingPerSource: 6, penalizedPending: 6, penaltyOffences: 2, idTimeout: 20000 })
            for (let i = 0; i < 2; i++) {
                const a = await attacker(server, "127.0.0.7")
                a.write("\n")
                await within(a.gone, 5000, "bad id")
            }
            const held = await Promise.all(Array.from({ length: 6 }, () => attacker(server, "127.0.0.7")))
            await within(
                new Promise<void>((r) => {
                    const check = () => (server.hostileStats().unauthenticated === 6 ? r() : setImmediate(check))
                    check()
                }),
                5000,
                "six held"
            )
            const evicted = new Promise<Warning>((r) => server.on("warning", (w) => w.code === "evicted" && r(w)))
            const c = startClient(server, "newcomer")
            await within(server.clientConn("newcomer"), 5000, "newcomer up despite the full table")
            const w = await within(evicted, 1000, "evicted warning")
            assert.match(w.address!, /^127\.0\.0\.7:/)
            await within(held[0]!.gone, 5000, "the oldest held socket closed")
            assert.deepEqual(held.slice(1).map((s) => s.destroyed), [false, false, false, false, false], "only the oldest was evicted")
            await exchange(server, c, 10)
        })

        it("warning logs are rate-limited: a flood of bad ids is logged at the budget, plus one summary", async function () {
            this.timeout(30000)
            const lines: string[] = []
            const logger = pino({ level: "warn" }, { write: (s: string) => void lines.push(s) })
            const server = await startServer({ maxWarningsPerSecond: 2 }, { logger })
            let events = 0
            server.on("warning", () => events++)
            const t0 = Date.now()
            for (let i = 0; i < 100; i++) {
                const a = await attacker(server, "127.0.0.8")
                a.write("\x00\n")
                await within(a.gone, 5000, "bad id cut")
            }
            const seconds = (Date.now() - t0) / 1000
            assert.ok(events >= 100, "every offence is still an event")
            const logged = lines.filter((l) => /"code":"bad-id"/.test(l)).length
            assert.ok(logged <= 2 + Math.ceil(seconds * 2) + 1, `${logged} bad-id lines logged in ${seconds} s at 2/s`)
            await within(
                new Promise<void>((r) => {
                    const t = setInterval(() => lines.some((l) => /warnings-skipped/.test(l)) && (clearInterval(t), r()), 50)
                }),
                10000,
                "summary line"
            )
        })
    })

    describe("a mixed attack does not disturb honest links or a storm", function () {
        it("garbage, oversized, slowloris, floods and connect-close from 127.0.0.2-6 while a Node client's qos traffic and a 300-client storm from 127.0.0.1 go on", async function () {
            this.timeout(60000)
            const server = await startServer({ idTimeout: 800 }, { timeout: 2000 })
            const honest = new Client({ id: "honest", port: server.port, timeout: 2000 })
            onCleanup(() => honest.close())
            honest.start()
            await within(server.clientConn("honest"), 5000, "honest up")
            let stop = false
            let hostile = 0
            const loop = async (from: string, body: (s: Attacker) => void) => {
                while (!stop) {
                    const s = await attacker(server, from).catch(() => undefined)
                    if (!s) continue
                    hostile++
                    body(s)
                    await within(s.gone, 10000, `${from} closed`).catch(() => s.destroy())
                }
            }
            const attacks = [
                loop("127.0.0.2", (s) => s.write(Buffer.from([0xde, 0xad, 0x00, 0xbe, 0xef, 0x0a]))),
                loop("127.0.0.3", (s) => s.write(Buffer.alloc(70000, 0x78))),
                loop("127.0.0.4", (s) => {
                    const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write("z")), 100)
                }),
                loop("127.0.0.5", (s) => s.write("f" + hostile + "\n" + "0x\n".repeat(2000))),
                loop("127.0.0.6", (s) => s.destroy()),
            ]
            const ids = Array.from({ length: 300 }, (_, i) => `s${i}`)
            const storm = (async () => {
                for (const id of ids) {
                    const c = new Client({ id, port: server.port, timeout: 2000 })
                    onCleanup(() => c.close())
                    c.start()
                }
                await server.waitAll(ids)
            })()
            await exchange(server, honest, 300)
            await within(storm, 30000, "300 storm clients up")
            stop = true
            await within(Promise.all(attacks), 15000, "attackers stopped")
            assert.ok(hostile > 10, `${hostile} hostile connections`)
            assert.equal(honest.connects, 1, "the honest link never dropped")
            assert.equal(server.connections().filter((c) => c.status()).length, 301)
        })
    })
})
