// The Node server and Node client over loopback: the API, both directions,
// restarts, take-over, ids, back-pressure, and faults 2-9 at this end.
import assert from "node:assert/strict"
import { getEventListeners, once } from "node:events"
import { pino } from "pino"
import { connect, createServer } from "node:net"
import { execFile } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Client, Connection, Gateway, Server, silentLogger, type Warning } from "../../src/server/index.js"
import { cleanup, closeAll, freePort, onCleanup, until, within } from "../kit/util.js"
import { nextWarning, raw, warnings, type RawSocket } from "../kit/sockets.js"

const T = 400 // a short timeout keeps outage tests quick
const silent = silentLogger()

afterEach(closeAll)

async function startServer(opts: ConstructorParameters<typeof Server>[0] = {}): Promise<Server> {
    const s = cleanup(new Server({ port: 0, host: "127.0.0.1", timeout: T, ...opts }))
    await s.listen()
    return s
}

function startClient(server: Server | number, id: string, opts: Partial<ConstructorParameters<typeof Client>[0]> = {}): Client {
    const port = typeof server === "number" ? server : server.port
    return cleanup(new Client({ id, port, timeout: T, ...opts })).start()
}

function textArrives(s: RawSocket, needle: string): Promise<void> {
    return new Promise((resolve) => {
        const check = () => {
            if (!s.text.includes(needle)) return
            s.off("data", check)
            resolve()
        }
        s.on("data", check)
        check()
    })
}

describe("server and Node client over loopback", function () {
    this.timeout(30000)

    describe("API", function () {
        it("listen() on port 0 reports the bound port; connection(), connections(), clientConn()", async function () {
            const server = await startServer()
            assert.ok(server.port > 0)
            assert.equal(server.connection("a"), undefined)
            const c = startClient(server, "a")
            const conn = await within(server.clientConn("a"), 5000, "clientConn")
            assert.equal(conn.id, "a")
            assert.equal(server.connection("a"), conn)
            assert.deepEqual(server.connections().map((x) => x.id), ["a"])
            await within(c.connected(), 5000, "client up")
            assert.equal(c.status(), true)
            assert.equal(conn.status(), true)
            assert.equal(c.peer, "devs-iot")
            assert.equal(c.connects, 1)
        })

        it("write/readline both ways with qos+wait, qos without wait, and no qos", async function () {
            const server = await startServer()
            const c = startClient(server, "a")
            const conn = await within(server.clientConn("a"), 5000, "clientConn")
            await c.write("q1")
            await c.write("q2", { wait: false })
            await c.write("n1", { qos: false })
            assert.deepEqual([await conn.readline(), await conn.readline(), await conn.readline()], ["q1", "q2", "n1"])
            await conn.write("Q1")
            await conn.write("Q2", { wait: false })
            await conn.write("N1", { qos: false })
            assert.deepEqual([await c.readline(), await c.readline(), await c.readline()], ["Q1", "Q2", "N1"])
        })

        it("for await over a connection and a client", async function () {
            const server = await startServer()
            const c = startClient(server, "a")
            const conn = await within(server.clientConn("a"), 5000, "clientConn")
            const got: string[] = []
            const reading = (async () => {
                for await (const l of conn) {
                    got.push(l)
                    if (got.length === 3) return
                }
            })()
            for (const l of ["a", "b", "c"]) await c.write(l)
            await within(reading, 5000, "three lines")
            assert.deepEqual(got, ["a", "b", "c"])
            // Lines already there and lines still to come; the loop ends, without an error, at close.
            await within(Promise.all(["d", "e"].map((l) => c.write(l, { wait: false }))), 5000, "d, e ACKed")
            const rest: string[] = []
            let third: () => void = () => undefined
            const three = new Promise<void>((r) => (third = r))
            const more = (async () => {
                for await (const l of conn) if (rest.push(l) === 3) third()
            })()
            await c.write("f")
            await within(three, 5000, "d, e, f")
            await server.close()
            await within(more, 5000, "for await ends at close")
            assert.deepEqual(rest, ["d", "e", "f"])
        })

        it("readlines() gives every line there is, in order, at most max, and waits for one; batches() ends at close", async function () {
            const server = await startServer()
            const c = startClient(server, "a")
            const conn = await within(server.clientConn("a"), 5000, "clientConn")
            // Unread lines are ACKed after ackDelay: once all five are, all five are there.
            await within(Promise.all(["l0", "l1", "l2", "l3", "l4"].map((l) => c.write(l, { wait: false }))), 5000, "five lines ACKed")
            assert.deepEqual(await conn.readlines(2), ["l0", "l1"])
            assert.equal(await conn.readline(), "l2")
            assert.deepEqual(await conn.readlines(), ["l3", "l4"])
            const next = conn.readlines()
            await c.write("later")
            assert.deepEqual(await within(next, 5000, "a waiting readlines()"), ["later"])
            await assert.rejects(conn.readlines(0), RangeError)
            await assert.rejects(conn.readlines(2.5), /max must be a whole number of lines/)
            const got: string[][] = []
            const reading = (async () => {
                for await (const batch of c.batches()) got.push(batch)
            })()
            await conn.write("m1")
            await conn.write("m2")
            await c.close()
            await within(reading, 5000, "batches() ending at close")
            assert.deepEqual(got.flat(), ["m1", "m2"])
            await assert.rejects(c.readlines(), { code: "ECLOSED" })
        })

        it("status events and onStatus on a cut, then connected() again", async function () {
            const server = await startServer()
            const seen: boolean[] = []
            const c = startClient(server, "a", { onStatus: (up) => seen.push(up) })
            const conn = await within(server.clientConn("a"), 5000, "clientConn")
            await c.connected()
            const down = once(c, "status")
            conn["socket"]!.destroy() // FIN/RST from the server side
            assert.deepEqual(await within(down, 2000, "status false"), [false, "closed by peer"])
            await within(c.connected(), 3000, "reconnected")
            assert.deepEqual(seen, [true, false, true])
            assert.equal(c.connects, 2)
        })

        it("write refuses bad lines with named errors", async function () {
            const server = await startServer()
            const c = startClient(server, "a", { maxLineBytes: 16 })
            await assert.rejects(c.write(""), { code: "EEMPTY" })
            await assert.rejects(c.write("a\nb"), { code: "ENEWLINE" })
            await assert.rejects(c.write("x".repeat(17)), { code: "ETOOLONG" })
            await assert.rejects(c.write(7 as unknown as string), { code: "ETYPE" })
            // At the smallest line limit the link still comes up and carries its longest line.
            const ca = await within(server.clientConn("a"), 5000, "a links up at maxLineBytes 16")
            await within(c.write("x".repeat(16)), 5000, "16 bytes ACKed")
            assert.equal(await ca.readline(), "x".repeat(16))
            // Plain JS may pass null for no options: a promise either way, never a throw.
            await assert.rejects(c.write("", null), { code: "EEMPTY" })
            const b = startClient(server, "b")
            const conn = await within(server.clientConn("b"), 5000, "clientConn")
            const read = conn.readline()
            await within(b.write("ok", null), 5000, "write with null options")
            assert.equal(await read, "ok")
        })

        it("bad options are refused with the option's name", function () {
            assert.throws(() => new Server({ port: 70000 }), /port must be a whole number from 0 to 65535/)
            assert.throws(() => new Server({ timeout: 10 }), /timeout must be/)
            assert.throws(() => new Server({ strictIds: true }), /strictIds needs a list/)
            assert.throws(() => new Server({ expected: [""] }), /expected id "": empty id/)
            assert.throws(() => new Client({ id: "" }), /id: empty id/)
            assert.throws(() => new Client({ id: "a\nb" }), /control byte/)
            assert.throws(() => new Client({ id: "a", window: 500 }), /window must be/)
        })

        it("an option key that is not one of the constructor's own is refused (ECONFIG) by name, with the close one, as plain JS passes it: Server, its limits, Client, Gateway", function () {
            const econfig = (re: RegExp) => (e: Error & { code?: string }) => e.code === "ECONFIG" && re.test(e.message)
            const js = <T>(o: object | null) => o as T // plain JS: no type check
            assert.throws(() => new Server(js({ prot: 9000 })), econfig(/^prot is not an option of new Server\(\) \(did you mean port\?\)$/))
            assert.throws(() => new Server(js({ expect: ["1"] })), econfig(/^expect is not an option of new Server\(\) \(did you mean expected\?\)$/))
            assert.throws(() => new Server(js({ limits: { maxclients: 3 } })), econfig(/^limits\.maxclients is not an option of new Server\(\) \(did you mean limits\.maxClients\?\)$/))
            assert.throws(() => new Client(js({ id: "a", backofFirst: 10 })), econfig(/^backofFirst is not an option of new Client\(\) \(did you mean backoffFirst\?\)$/))
            assert.throws(() => new Gateway(js({ brokerPrt: 1884 })), econfig(/^brokerPrt is not an option of new Gateway\(\) \(did you mean brokerPort\?\)$/))
            assert.throws(() => new Server(js({ zzz: 1 })), econfig(/^zzz is not an option of new Server\(\)$/), "no suggestion when nothing is close")
            // Each takes its own keys: a Client's or a gateway's option is not a Server's, nor a Server's a Client's.
            assert.throws(() => new Server(js({ backoffCap: 100 })), econfig(/^backoffCap is not an option of new Server\(\)/))
            assert.throws(() => new Server(js({ mqtt: "mqtt://127.0.0.1:1883" })), econfig(/^mqtt is not an option of new Server\(\)/))
            assert.throws(() => new Client(js({ id: "a", strictIds: true })), econfig(/^strictIds is not an option of new Client\(\)/))
            assert.throws(() => new Gateway(js({ backoffCap: 100 })), econfig(/^backoffCap is not an option of new Gateway\(\)/))
            // The gateway sets epochFor itself: one given would be ignored.
            assert.throws(() => new Gateway(js({ epochFor: () => undefined })), econfig(/^epochFor is not an option of new Gateway\(\)/))
            assert.throws(() => new Server(js(null)), econfig(/^the options of new Server\(\) must be an object, got null$/))
            // Every documented key is taken: the link's, the server's and the gateway's own.
            new Client({ id: "a", host: "h", port: 1, onStatus: () => {}, logger: silent, backoffFirst: 10, backoffCap: 20, key: "00".repeat(32), encrypt: true, state: undefined, timeout: 1000, window: 8 })
            const server = { port: 0, host: "127.0.0.1", expected: ["a"], strictIds: true, logger: silent, keys: {}, revoked: [], allowPlain: [], encrypt: true, pushKeys: true, limits: { maxClients: 3, idTimeout: 1000 }, state: undefined, ackDelay: 10, onFull: "pause" as const }
            new Server({ ...server, epochFor: () => undefined })
            new Gateway({ ...server, mqtt: "mqtt://127.0.0.1:1883", brokerPort: 0, brokerHost: "127.0.0.1", name: "g", mqttBackoffFirst: 100, mqttBackoffCap: 1000 })
            // A bad value is refused with what was given.
            assert.throws(() => new Gateway({ mqttBackoffFirst: 5 }), econfig(/^mqttBackoffFirst must be at least 10 ms .*; got 5 and 5000$/))
        })

        it("client.sendReport() refuses a bad field with ECONFIG, linked or not (before: a plain Error when up, nothing when down)", function () {
            const c = new Client({ id: "a" }) // never started: no link
            const econfig = (re: RegExp) => (e: Error & { code?: string }) => e.code === "ECONFIG" && re.test(e.message)
            assert.throws(() => c.sendReport({ firmware: "a b", uptime: 1, reconnects: 0 }), econfig(/^sendReport\(\): firmware must be 1-32 characters/))
            assert.throws(() => c.sendReport({ firmware: "1.0", uptime: -1, reconnects: 0 }), econfig(/^sendReport\(\): uptime must be/))
            assert.equal(c.sendReport({ firmware: "1.0", uptime: 1, reconnects: 0 }), false)
        })

        it("close(): pending reads and writes reject with ECLOSED; the server stops listening", async function () {
            const server = await startServer()
            const c = startClient(server, "a")
            const conn = await within(server.clientConn("a"), 5000, "clientConn")
            const read = assert.rejects(conn.readline(), { code: "ECLOSED" })
            await server.close()
            await read
            await assert.rejects(conn.write("x"), { code: "ECLOSED" })
            const s = connect({ port: server.port, host: "127.0.0.1" })
            const [err] = await within(once(s, "error"), 2000, "refused")
            assert.equal((err as NodeJS.ErrnoException).code, "ECONNREFUSED")
            await c.close()
            await assert.rejects(c.readline(), { code: "ECLOSED" })
        })

        it("an AbortSignal ends a wait for a line, a batch, a link or an id, and takes nothing: the next line goes to the next read; no listener is left on the signal", async function () {
            const server = await startServer()
            const c = startClient(server, "a")
            const conn = await within(server.clientConn("a"), 5000, "clientConn")
            const timedOut = (e: Error) => e.name === "TimeoutError"
            await within(assert.rejects(conn.readline({ signal: AbortSignal.timeout(30) }), timedOut), 5000, "readline aborted")
            await within(assert.rejects(conn.readlines(8, { signal: AbortSignal.timeout(30) }), timedOut), 5000, "readlines aborted")
            await c.write("after")
            assert.equal(await within(conn.readline(), 5000, "the line"), "after", "the aborted reads took nothing")
            // Aborted already: rejected at once, the line waiting stays unread.
            await within(c.write("kept"), 5000, "the line there, ACKed unread after ackDelay")
            const gone = new AbortController()
            gone.abort(new Error("stop"))
            await assert.rejects(conn.readline({ signal: gone.signal }), /stop/)
            assert.equal(await conn.readline(), "kept")
            // A signal shared by many reads that each got a line keeps no listener.
            const shared = new AbortController()
            for (let i = 0; i < 20; i++) {
                const r = conn.readline({ signal: shared.signal })
                await c.write(`l${i}`)
                assert.equal(await within(r, 5000, `line ${i}`), `l${i}`)
            }
            assert.equal(getEventListeners(shared.signal, "abort").length, 0)
            // An id and a link that never come.
            await within(assert.rejects(server.clientConn("nobody", { signal: AbortSignal.timeout(30) }), timedOut), 5000, "clientConn aborted")
            await within(assert.rejects(server.waitAll(["a", "nobody"], { signal: AbortSignal.timeout(30) }), timedOut), 5000, "waitAll aborted")
            assert.equal((server as unknown as { arrivals: Map<string, unknown> }).arrivals.size, 0, "no waiter left for the id")
            const never = cleanup(new Client({ id: "never", port: server.port, logger: silentLogger() }))
            await within(assert.rejects(never.connected({ signal: AbortSignal.timeout(30) }), timedOut), 5000, "connected aborted")
            // Not a signal: a TypeError, from the promise.
            await assert.rejects(conn.readline({ signal: {} as AbortSignal }), (e: Error) => e instanceof TypeError && /readline\(\): signal must be an AbortSignal/.test(e.message))
        })

        it("events are typed: each listener gets its arguments' types; an unknown event does not compile", function () {
            // Checked by the compiler; never run.
            const typed = (s: Server, c: Client, conn: Connection): void => {
                c.on("status", (up, reason) => [up satisfies boolean, reason satisfies string | undefined])
                c.once("rekey", (kcv) => kcv satisfies string)
                conn.on("warning", (w) => w.code satisfies Warning["code"])
                s.once("disconnect", (k, why) => [k.id, why satisfies string])
                // @ts-expect-error: no such event
                c.on("stauts", () => {})
                // @ts-expect-error: the listener of "connect" gets a Connection
                s.once("connect", (k: number) => k)
            }
            assert.equal(typeof typed, "function")
        })

        it("close() twice: both calls resolve once everything is closed, Server and Client", async function () {
            const server = await startServer()
            const c = startClient(server, "a")
            await within(c.connected(), 5000, "client up")
            for (const x of [c, server]) {
                let first = false
                const p = x.close().then(() => (first = true))
                await within(x.close(), 5000, "second close")
                assert.equal(first, true, "the second close() resolved before the first")
                await p
            }
        })

        it("listen() after close(), or close() while listen() is under way: nothing left listening, every promise settles", async function () {
            const port = await freePort()
            const a = new Server({ port, host: "127.0.0.1", logger: silent })
            const listening = a.listen()
            await within(a.close(), 5000, "close during listen")
            await within(listening, 5000, "listen settles")
            await assert.rejects(a.listen(), { code: "ECLOSED" })
            await within(a.close(), 5000, "close again")
            // The port is free again: a new Server takes it.
            const b = await startServer({ port })
            assert.equal(b.port, port)
        })

        it("a program that closes what it opened ends by itself: a Client closed while retrying, while connecting, with reads pending; a Server closed while listening", async function () {
            const index = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), "../../src/server/index.js")).href
            const port = await freePort() // nothing listens there: the first client retries
            const script = `
                import { Server, Client } from ${JSON.stringify(index)}
                const retrying = new Client({ id: "r", host: "127.0.0.1", port: ${port}, backoffFirst: 5 }).start()
                await new Promise((r) => setTimeout(r, 200))
                await retrying.close()
                const early = new Server({ port: 0, host: "127.0.0.1" })
                const listening = early.listen()
                await early.close()
                await listening
                const server = new Server({ port: 0, host: "127.0.0.1" })
                await server.listen()
                await new Client({ id: "c", port: server.port }).start().close()
                const c = new Client({ id: "a", port: server.port }).start()
                await c.connected()
                const conn = await server.clientConn("a")
                const reads = [c.readline(), conn.readline(), c.connected()].map((p) => p.catch((e) => e.code))
                await server.close()
                await c.close()
                console.log("ended", (await Promise.all(reads)).join(","))
            `
            const r = await new Promise<{ code: number | null; out: string }>((done) =>
                execFile(process.execPath, ["--input-type=module", "-e", script], { timeout: 20000, killSignal: "SIGKILL" }, (err, stdout, stderr) =>
                    done({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: stdout + stderr })
                )
            )
            assert.equal(r.code, 0, r.out)
            assert.match(r.out, /^ended ECLOSED,ECLOSED,$/m)
        })

        it("clientConn() refuses at once an id no client can connect with", async function () {
            const server = await startServer({ expected: ["a"], strictIds: true })
            await assert.rejects(within(server.clientConn("b"), 2000, "clientConn(b)"), { code: "ECONFIG" })
            await assert.rejects(within(server.waitAll(["a", "b"]), 2000, "waitAll"), { code: "ECONFIG" })
            const open = await startServer({ limits: { maxIdBytes: 300 } })
            await assert.rejects(within(open.clientConn("a\u0001"), 2000, "clientConn(control byte)"), { code: "ECONFIG" })
            await assert.rejects(within(open.clientConn("x".repeat(301)), 2000, "clientConn(over maxIdBytes)"), { code: "ECONFIG" })
            // Up to the server's maxIdBytes (over the 256 a devs-iot client sends) is waited for.
            const long = "x".repeat(300)
            const c = startClient(open, "a b")
            assert.equal((await within(open.clientConn("a b"), 5000, "clientConn(a b)")).id, "a b")
            await c.close()
            let came = false
            void open.clientConn(long).then(() => (came = true), () => {})
            await new Promise((r) => setImmediate(r))
            assert.equal(came, false)
        })

        it("waitAll() resolves once every expected id has connected (a readonly list of ids is taken)", async function () {
            const ids = ["a", "b"] as const
            const server = await startServer({ expected: ids, allowPlain: ids })
            let done = false
            const all = server.waitAll().then(() => (done = true))
            startClient(server, "a")
            await server.clientConn("a")
            assert.equal(done, false)
            startClient(server, "b")
            await within(all, 5000, "waitAll")
        })
    })

    describe("many clients, restarts, ids", function () {
        it("100 clients at once exchange qos messages both ways", async function () {
            const server = await startServer({ timeout: 2000 })
            const ids = Array.from({ length: 100 }, (_, i) => `c${i}`)
            const clients = ids.map((id) => startClient(server, id, { timeout: 2000 }))
            await within(server.waitAll(ids), 10000, "all connected")
            await within(
                Promise.all(
                    clients.map(async (c, i) => {
                        const conn = server.connection(ids[i]!)!
                        await c.write(`hello from ${c.id}`)
                        assert.equal(await conn.readline(), `hello from ${c.id}`)
                        await conn.write(`hello to ${c.id}`)
                        assert.equal(await c.readline(), `hello to ${c.id}`)
                    })
                ),
                10000,
                "exchange"
            )
        })

        it("several addresses: a first one that accepts and never answers is left for the next", async function () {
            const server = await startServer()
            const held: Array<{ destroy(): void }> = []
            const hung = createServer((s) => void (s.on("error", () => undefined), held.push(s))) // accepts, reads, says nothing
            await new Promise<void>((r) => hung.listen(0, "127.0.0.1", r))
            onCleanup(() => {
                for (const s of held) s.destroy()
                hung.close()
            })
            const hungPort = (hung.address() as { port: number }).port
            const c = cleanup(new Client({ id: "multi", host: `127.0.0.1:${hungPort},127.0.0.1:${server.port}`, timeout: 500, backoffFirst: 20, backoffCap: 100 }).start())
            await within(c.connected(), 10000, "up on the second address")
            await within(c.write("via the second"), 5000, "a line")
            assert.equal(await within(server.connection("multi")!.readline(), 5000, "read"), "via the second")
        })

        it("server restart while a client writes: every qos line is delivered exactly once", async function () {
            const port = await freePort()
            let server = await startServer({ port })
            const c = startClient(port, "a", { backoffCap: 200 })
            const got: string[] = []
            const drain = async (s: Server) => {
                const conn = await s.clientConn("a")
                try {
                    for await (const l of conn) got.push(l)
                } catch {}
            }
            void drain(server)
            const writing = (async () => {
                for (let i = 0; i < 200; i++) await c.write(`m${i}`)
            })()
            await within(
                new Promise<void>((r) => {
                    const t = setInterval(() => got.length >= 50 && (clearInterval(t), r()), 2)
                }),
                5000,
                "50 lines before the restart"
            )
            await server.close()
            server = await startServer({ port })
            void drain(server)
            await within(writing, 10000, "all writes complete")
            await within(
                new Promise<void>((r) => {
                    const t = setInterval(() => got.length >= 200 && (clearInterval(t), r()), 2)
                }),
                5000,
                "all lines delivered"
            )
            assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => `m${i}`))
        })

        it("client restart: its ids start again at 00 and its lines are delivered", async function () {
            const server = await startServer()
            const a = startClient(server, "a")
            const conn = await server.clientConn("a")
            for (const l of ["1", "2", "3"]) await a.write(l)
            await a.close()
            const b = startClient(server, "a")
            for (const l of ["4", "5"]) await b.write(l)
            const got = []
            for (let i = 0; i < 5; i++) got.push(await within(conn.readline(), 2000, "line"))
            assert.deepEqual(got, ["1", "2", "3", "4", "5"])
        })

        it("fault 9: a second connection with a live id is refused as a duplicate", async function () {
            const server = await startServer()
            const c = startClient(server, "a")
            await server.clientConn("a")
            const refused = nextWarning(server, "duplicate-id")
            const s = await raw(server.port, "a\n")
            await within(refused, 2000, "duplicate-id warning")
            await within(once(s, "close"), 2000, "newcomer closed")
            assert.equal(c.status(), true)
            await c.write("still here")
            assert.equal(await server.connection("a")!.readline(), "still here")
        })

        it("fault 9: a newcomer takes over a link silent for more than timeout/2", async function () {
            // A long timeout: the newcomer must arrive while the old link's
            // silence is between timeout/2 (4 s) and timeout (8 s), which a
            // loaded machine's delays (its start, the server reading) must not
            // push out of that window.
            const server = await startServer({ timeout: 8000 })
            const first = await raw(server.port, "a\n\n") // a v1 board that then goes quiet
            await server.clientConn("a")
            first.write("\n")
            // Silent for more than timeout/2 but less than timeout: the condition under test.
            await new Promise((r) => setTimeout(r, 5000))
            const took = nextWarning(server, "take-over", 10000)
            const c = startClient(server, "a", { timeout: 8000 })
            await within(took, 10000, "take-over warning")
            await within(c.connected(), 10000, "newcomer up")
            await within(once(first, "close"), 10000, "old socket closed")
        })

        it("fault 9: a clean close is an outage at once, and the next connection takes the id", async function () {
            const server = await startServer({ timeout: 5000 })
            const c = startClient(server, "a", { timeout: 5000 })
            const conn = await server.clientConn("a")
            const down = once(conn, "status")
            const said = warnings(server)
            await c.close()
            // For the close, not after the timeout ("nothing received for ...").
            assert.deepEqual(await within(down, 10000, "server sees the close"), [false, "closed by peer"])
            const c2 = startClient(server, "a", { timeout: 5000 })
            await within(c2.connected(), 10000, "same id back")
            assert.deepEqual(said.map((w) => w.code), [], "the next connection was not refused as a duplicate")
        })

        it("an unexpected id gets a warning; with strictIds it is refused", async function () {
            const loose = await startServer({ expected: ["a"] })
            const w = nextWarning(loose, "unexpected-id")
            const c = startClient(loose, "zz")
            await within(w, 2000, "warning")
            await within(c.connected(), 2000, "accepted")
            const strict = await startServer({ expected: ["a"], strictIds: true })
            const r = nextWarning(strict, "refused-id")
            const s = await raw(strict.port, "zz\n")
            await within(r, 2000, "refused-id")
            await within(once(s, "close"), 2000, "closed")
            assert.equal(strict.connection("zz"), undefined)
        })

        it("a bad or missing id line is refused and logged; others are not affected", async function () {
            const server = await startServer()
            const list = warnings(server)
            const c = startClient(server, "good")
            await server.clientConn("good")
            const empty = await raw(server.port, "\n")
            await within(once(empty, "close"), 2000, "empty id closed")
            const long = await raw(server.port, "x".repeat(300) + "\n")
            await within(once(long, "close"), 2000, "long id closed")
            const silent = await raw(server.port, "")
            await within(once(silent, "close"), 3 * T, "silent socket closed after 2 x timeout")
            assert.deepEqual(list.map((w) => w.code).sort(), ["bad-id", "bad-id", "id-timeout"])
            await c.write("fine")
            assert.equal(await server.connection("good")!.readline(), "fine")
        })
    })

    describe("flow control", function () {
        it("back-pressure: a slow reader loses nothing, and the pause is not an outage (fault 6)", async function () {
            const server = await startServer({ maxReceivedLines: 16 })
            const c = startClient(server, "a")
            const conn = await server.clientConn("a")
            let downs = 0
            conn.on("status", (up: boolean) => !up && downs++)
            const writes = Array.from({ length: 500 }, (_, i) => c.write(`m${i}`, { wait: false }))
            const got: string[] = []
            // Read slowly, and stop for 3 x timeout halfway: the link must stay up.
            for (let i = 0; i < 500; i++) {
                got.push(await within(conn.readline(), 5000, `line ${i}`))
                if (i === 250) await new Promise((r) => setTimeout(r, 3 * T))
            }
            await within(Promise.all(writes), 5000, "all ACKed")
            assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => `m${i}`))
            assert.equal(downs, 0, "no outage")
            assert.equal(conn.stats.dropped, 0)
        })

        it("the queue of writes waiting for a link is capped: EQUEUEFULL beyond it", async function () {
            const port = await freePort() // nothing listens: the link stays down
            const c = startClient(port, "a", { maxQueuedLines: 3 })
            const pending = [c.write("1"), c.write("2"), c.write("3")]
            await assert.rejects(c.write("4"), { code: "EQUEUEFULL" })
            const server = await startServer({ port })
            const conn = await within(server.clientConn("a"), 5000, "connects when the server appears")
            await within(Promise.all(pending), 5000, "queued writes delivered")
            assert.deepEqual([await conn.readline(), await conn.readline(), await conn.readline()], ["1", "2", "3"])
        })
    })

    describe("faults of the original, at this end", function () {
        it("fault 2: a line cut by an outage is not joined to the next socket's bytes", async function () {
            const server = await startServer()
            const s1 = await raw(server.port, "a\n\n")
            const conn = await server.clientConn("a")
            await within(textArrives(s1, "\n"), 2000, "server keepalive") // v1 link up
            s1.write("00hal")
            await new Promise<void>((r) => s1.end(() => r()))
            await within(once(conn, "status"), 2000, "down")
            const s2 = await raw(server.port, "a\n\n")
            await within(textArrives(s2, "\n"), 2000, "up again")
            s2.write("01full\n")
            assert.equal(await within(conn.readline(), 2000, "line"), "full")
            assert.equal(conn.stats.badLines, 0)
        })

        // A timer that came due while the process was stalled (a long GC, a
        // starved CPU) runs before the process reads its sockets again: the
        // silence must be counted after what the peer sent meanwhile is read.
        it("a stall of the process longer than the timeout: a keepalive that arrived during it keeps the link up", async function () {
            const server = await startServer()
            const s = await raw(server.port, "a\n\n")
            const conn = await server.clientConn("a")
            await within(textArrives(s, "\n"), 2000, "server keepalive") // v1 link up
            const downs: string[] = []
            conn.on("status", (up: boolean, reason?: string) => void (up || downs.push(reason ?? "")))
            s.write("\n") // in the server's socket before the stall ends
            const end = Date.now() + 3 * T
            while (Date.now() < end) {} // the stall
            // A timer set now runs after those that came due in the stall.
            await new Promise((r) => setTimeout(r, 20))
            assert.deepEqual(downs, [], "the link went down")
            s.write("00after\n")
            assert.equal(await within(conn.readline(), 2000, "a line after the stall"), "after")
            assert.equal(conn.connects, 1)
        })

        it("a stall of the process longer than the id deadline: an id line that arrived during it is taken", async function () {
            const server = await startServer() // idTimeout: 2 x T
            const said = warnings(server)
            const s = await raw(server.port, "")
            await until(() => server.hostileStats().pending === 1, 5000, "the socket accepted")
            s.write("a\n\n") // in the server's socket before the stall ends
            const end = Date.now() + 3 * T
            while (Date.now() < end) {} // the stall
            await new Promise((r) => setTimeout(r, 20)) // after the timers that came due in the stall
            assert.deepEqual(said.map((w) => w.code), [])
            await within(server.clientConn("a"), 2000, "the id taken")
        })

        it("a stall of the process longer than the client's connect deadline: a connect that completed during it is taken", async function () {
            const server = await startServer()
            const lines: string[] = []
            const logger = pino({ level: "debug" }, { write: (l: string) => void lines.push(l) })
            const c = startClient(server, "a", { logger })
            await new Promise((r) => process.nextTick(r)) // its connect under way, not yet seen
            const end = Date.now() + 3 * T
            while (Date.now() < end) {} // the stall
            await within(c.connected(), 5000, "link up")
            assert.deepEqual(lines.filter((l) => l.includes("ETIMEDOUT")), [], "the connect was cut")
        })

        it("fault 3: a UTF-8 character split across two TCP writes arrives whole", async function () {
            const server = await startServer()
            const s = await raw(server.port, "a\n\n")
            const conn = await server.clientConn("a")
            const line = Buffer.from("00\u20ac\u00e9\n")
            s.write(line.subarray(0, 3))
            await new Promise((r) => setTimeout(r, 20))
            s.write(line.subarray(3))
            assert.equal(await within(conn.readline(), 2000, "line"), "\u20ac\u00e9")
        })

        it("fault 4: garbage lines are reported and dropped; ACKs and keepalives go on", async function () {
            const server = await startServer()
            const s = await raw(server.port, "a\n\n")
            const conn = await server.clientConn("a")
            const bad = nextWarning(server, "bad-line")
            s.write("zz\nzzhello\n05ok\n")
            await within(bad, 2000, "bad-line warning")
            assert.equal(await within(conn.readline(), 2000, "good line"), "ok")
            await within(textArrives(s, "05\n"), 2000, "ACK of the good line")
        })

        it("fault 7: a client whose first connect is refused keeps trying and gets in", async function () {
            const port = await freePort()
            const failed: number[] = []
            let onFail = () => {}
            const logger = pino({ level: "debug" }, {
                write: (s: string) => {
                    const f = JSON.parse(s) as { failures?: number; msg: string }
                    if (typeof f.failures === "number" && /ECONNREFUSED/.test(f.msg)) failed.push(f.failures), onFail()
                },
            })
            const c = startClient(port, "a", { backoffCap: 300, logger })
            await within(
                new Promise<void>((r) => (onFail = () => failed.length >= 3 && r())),
                5000,
                "three refused connects"
            )
            assert.deepEqual(failed.slice(0, 3), [1, 2, 3])
            assert.equal(c.status(), false)
            const server = await startServer({ port })
            await within(c.connected(), 3000, "connected once the server exists")
            const conn = await server.clientConn("a")
            await within(conn.connected(), 3000, "up at the server")
            assert.equal(conn.connects, 1)
        })

        it("fault 8: 1,000 clients that start together all connect, and a silent socket delays no one", async function () {
            this.timeout(60000)
            const server = await startServer({ timeout: 2000, limits: { idTimeout: 60000 } })
            const silent = await raw(server.port, "") // connects and never sends its id
            let silentClosed = false
            silent.on("close", () => (silentClosed = true))
            const ids = Array.from({ length: 1000 }, (_, i) => `b${i}`)
            for (const id of ids) startClient(server, id, { timeout: 2000 })
            await within(server.waitAll(ids), 30000, "1,000 clients connected")
            assert.equal(server.connections().filter((c) => c.status()).length, 1000)
            assert.equal(silentClosed, false, "the silent socket was still waiting for its id all along")
        })
    })
})
