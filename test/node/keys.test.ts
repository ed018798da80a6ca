// Keys that mean what they say, over real loopback sockets: a reload that
// revokes, refusals a client understands (and backs off from), key hygiene
// (no key in any error or log line, files others can read, keys on the
// command line), an id that must encrypt, and a key rotation without
// downtime, through the API and through the command line.
import assert from "node:assert/strict"
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs"
import { createServer, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pino } from "pino"
import { Client, parseClientKey, parseKeyFile, Server, type Connection, type Logger } from "../../src/server/index.js"
import { cleanup, cli, closeAll, onCleanup, until, within, exchange } from "../kit/util.js"
import { nextWarning, raw } from "../kit/sockets.js"
import { Mitm } from "../kit/mitm.js"
import { Fleet } from "../../src/server/fleet.js"
import { Metrics } from "../../src/server/metrics.js"

const T = 400
const KEY = "11".repeat(32)
const OTHER = "22".repeat(32)
const NEXT = "3a".repeat(32)

afterEach(closeAll)

// Stops a CLI process (by pid) unless it has exited already.
function stop(c: { stop(): void }): void {
    try {
        c.stop()
    } catch {
        // already gone
    }
}

async function startServer(opts: ConstructorParameters<typeof Server>[0] = {}): Promise<Server> {
    const s = cleanup(new Server({ port: 0, host: "127.0.0.1", timeout: T, keys: { k1: KEY }, ...opts }))
    await s.listen()
    return s
}

interface Sink {
    records: Array<Record<string, unknown> & { level: number; msg: string }>
    next(match: (r: Sink["records"][number]) => boolean, ms: number, what: string): Promise<Sink["records"][number]>
}

// A logger whose records a test reads (every level).
function sink(): Sink & { logger: Logger } {
    const records: Sink["records"] = []
    const waiters: Array<() => void> = []
    const logger = pino({ level: "debug" }, {
        write: (s: string) => {
            records.push(JSON.parse(s))
            for (const w of waiters.splice(0)) w()
        },
    })
    const next: Sink["next"] = (match, ms, what) =>
        within(
            new Promise((resolve) => {
                let from = 0
                const check = () => {
                    for (; from < records.length; from++) if (match(records[from]!)) return resolve(records[from]!)
                    waiters.push(check)
                }
                check()
            }),
            ms,
            what
        )
    return { records, next, logger: logger as unknown as Logger }
}

function startClient(port: number, id: string, opts: Partial<ConstructorParameters<typeof Client>[0]> = {}): Client {
    return cleanup(new Client({ id, port, timeout: T, backoffFirst: 20, backoffCap: 100, ...opts })).start()
}

function downOnce(c: Client): Promise<string> {
    return new Promise((r) => c.once("status", (up, reason) => !up && r(reason ?? "")))
}

// A v1 board: its id, then a keepalive every 100 ms; resolves when the server closes it.
async function v1Closed(port: number, id: string): Promise<string> {
    const s = await raw(port, id + "\n")
    const tick = setInterval(() => s.write("\n"), 100)
    try {
        await within(new Promise((r) => s.once("close", r)), 3000, "the server closes the v1 socket")
    } finally {
        clearInterval(tick)
    }
    return s.text
}

describe("keys that mean what they say", function () {
    describe("revocation on reload", function () {
        it("an id removed from the keys: its live session ends (the client told, authenticated) and it stays refused for every kind of client until opened", async function () {
            const server = await startServer({ keys: { k1: KEY, k2: OTHER } })
            const log = sink()
            const client = startClient(server.port, "k1", { key: KEY, logger: log.logger })
            await within(client.connected(), 3000, "up")
            const down = downOnce(client)
            const r = server.setKeys({ k2: OTHER })
            assert.deepEqual(r, { removed: ["k1"], ended: ["k1"] })
            await within(down, 3000, "the live session ends")
            await log.next((x) => x.msg.includes("revoked by the server's operator (authenticated)"), 3000, "the client is told, on its sealed link")
            // It keeps retrying, and is refused (a hint now: before any proof).
            const refusedAgain = await nextWarning(server, "revoked")
            assert.match(refusedAgain.detail, /id revoked by the key file: refused/)
            await client.close()
            assert.deepEqual(server.revokedIds(), ["k1"])
            // Anyone else with the id: a devs-iot client without a key is told, a v1 board sees only the close.
            const plainLog = sink()
            let ups = 0
            const plain = startClient(server.port, "k1", { logger: plainLog.logger, onStatus: (u) => u && ups++ })
            await plainLog.next((x) => x.msg.includes("revoked by the server's operator") && x.msg.includes("only a hint"), 3000, "the un-keyed client is told")
            await plain.close()
            assert.equal(ups, 0, "never up")
            assert.equal(await v1Closed(server.port, "k1"), "", "a v1 board gets no extension line")
            assert.equal(server.connection("k1")!.connects, 1, "nobody took the id")
            // Opened on purpose: an un-keyed client may use it.
            server.setKeys({ k2: OTHER }, [], ["k1"])
            const opened = startClient(server.port, "k1")
            await within(opened.connected(), 3000, "opened id: plain client up")
        })

        it("a '<id> revoked' line refuses the id from the start; a reload that changes a key ends the session on the old key; adding a next key ends nothing", async function () {
            const server = await startServer({ keys: { k1: KEY }, revoked: ["gone"] })
            assert.match(await v1Closed(server.port, "gone"), /^$/)
            const client = startClient(server.port, "k1", { key: KEY })
            await within(client.connected(), 3000, "up")
            let downs = 0
            client.on("status", (up: boolean) => !up && downs++)
            const r = server.setKeys({ k1: { keys: [KEY, NEXT] } })
            assert.deepEqual(r, { removed: ["gone"], ended: [] }, "a next key ends nothing")
            assert.deepEqual(server.revokedIds(), ["gone"], "a revoked line deleted: still revoked until 'open'")
            await exchange(server, client, "still", 3)
            assert.equal(downs, 0)
            assert.equal(server.keyInUse("k1"), 1)
            const down = downOnce(client)
            const failed = nextWarning(server, "auth-failed")
            assert.deepEqual(server.setKeys({ k1: OTHER }).ended, ["k1"], "the key it proved is gone")
            await within(down, 3000, "ended")
            assert.match((await failed).detail, /wrong key/, "the old key is refused from now on")
        })

        it("a plain session on an id that gets a key is ended (its client told the key is required)", async function () {
            const server = await startServer({ keys: {} })
            const log = sink()
            const client = startClient(server.port, "p1", { logger: log.logger })
            await within(client.connected(), 3000, "plain up")
            const down = downOnce(client)
            assert.deepEqual(server.setKeys({ p1: KEY }).ended, ["p1"])
            await within(down, 3000, "ended")
            await log.next((x) => x.msg.includes("give this client its key"), 3000, "told")
        })
    })

    describe("refusals a client understands", function () {
        it("a client without a key toward a keyed server: never up, a warning that says why, back-off growing to its cap", async function () {
            const server = await startServer()
            const log = sink()
            let ups = 0
            startClient(server.port, "k1", { logger: log.logger, backoffFirst: 20, backoffCap: 400, onStatus: (u) => u && ups++ })
            const retries: Sink["records"] = []
            for (let i = 0; i < 6; i++) retries.push(await log.next((x) => x["code"] === "refused" && !retries.includes(x), 10000, `refusal ${i + 1}`))
            assert.equal(ups, 0, "never counted as connected")
            for (const r of retries) assert.match(r.msg, /this id has a key on the server: give this client its key .*only a hint/)
            assert.deepEqual(retries.map((r) => r.level), [40, 40, 20, 40, 20, 20], "warn on the 1st, 2nd, 4th refusal in a row")
            const delays = retries.map((r) => r["retryIn"] as number)
            // Each delay is within [d/2, d], d doubling from 20 to the cap of 400.
            const tops = [20, 40, 80, 160, 320, 400]
            delays.forEach((d, i) => assert.ok(d >= tops[i]! / 2 && d <= tops[i]!, `retry ${i + 1}: ${d} ms outside [${tops[i]! / 2}, ${tops[i]}] (${delays})`))
        })

        it("a refused duplicate id: a devs-iot client is told 'id in use' and backs off; a v1 one is closed without a word; the live link is untouched", async function () {
            const server = await startServer({ keys: {} })
            const a = startClient(server.port, "d1")
            await within(a.connected(), 3000, "first up")
            let downs = 0
            a.on("status", (up: boolean) => !up && downs++)
            const log = sink()
            const dup = nextWarning(server, "duplicate-id")
            const b = startClient(server.port, "d1", { logger: log.logger })
            await dup
            await log.next((x) => x["code"] === "refused" && x.msg.includes("another connection with this id is live") && x.level === 40, 3000, "told at warn")
            await b.close()
            assert.equal(await v1Closed(server.port, "d1"), "", "nothing for a v1 duplicate")
            await exchange(server, a, "live", 3)
            assert.equal(downs, 0)
        })

        it("a new id at the id cap (maxClients): a devs-iot client is told 'server-full' and backs off; a v1 one is closed without a word; counted in the metrics and logged", async function () {
            const server = await startServer({ keys: {}, limits: { maxClients: 1 } })
            const metrics = new Metrics(new Fleet(server))
            onCleanup(() => metrics.close())
            const a = startClient(server.port, "a")
            await within(a.connected(), 3000, "the one id the table holds")
            const full = nextWarning(server, "too-many-clients")
            const log = sink()
            let ups = 0
            startClient(server.port, "b", { logger: log.logger, onStatus: (u) => u && ups++ })
            assert.equal((await within(full, 3000, "logged")).id, "b")
            const first = await log.next((x) => x["code"] === "refused" && x.msg.includes("the server holds as many client ids as it may") && x.level === 40, 3000, "told at warn")
            await log.next((x) => x["code"] === "refused" && x !== first, 3000, "refused again: it keeps retrying")
            assert.equal(ups, 0)
            assert.equal(await v1Closed(server.port, "c"), "", "nothing for a v1 board")
            assert.equal(server.connection("b"), undefined)
            assert.equal(server.connection("c"), undefined)
            const told = server.refusals().get("server-full") ?? 0
            assert.ok(told >= 3, `refusals counted: ${told}`)
            const { body } = await metrics.text()
            const m = /^devs_iot_refusals_total\{reason="server-full"\} (\d+)$/m.exec(body)
            assert.ok(m && Number(m[1]) >= told, "in the metrics")
            await exchange(server, a, "live", 3)
        })

        it("a refusal before authentication can be forged: logged as a hint, and the client keeps retrying", async function () {
            let conns = 0
            const forms = ["!refused revoked\n", "!auth refused\n", "!refused wrong-key\n"]
            const fake = createServer((s: Socket) => {
                const form = forms[conns++ % forms.length]!
                s.on("error", () => {})
                s.once("data", () => s.end(form))
            })
            await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r))
            onCleanup(() => new Promise<void>((r) => fake.close(() => r())))
            const port = (fake.address() as { port: number }).port
            const log = sink()
            const client = startClient(port, "k1", { key: KEY, logger: log.logger })
            await until(() => conns >= 4, 10000, "the client keeps retrying")
            await client.close()
            const said = log.records.filter((r) => r["code"] === "refused")
            assert.ok(said.length >= 3, "each refusal logged")
            for (const r of said) assert.match(r.msg, /says the server; not authenticated, so only a hint: retrying/)
            assert.ok(!log.records.some((r) => /authentication failed/.test(r.msg)), "not reported as a failed authentication")
        })
    })

    describe("key hygiene", function () {
        it("no key-file error shows a key, whatever is wrong with the line", function () {
            const bad = [
                `a ${KEY} extra`, // one field too many
                `a ${KEY.slice(0, 63)} extra`,
                `a ${KEY.slice(0, 63)}`,
                `${KEY}`,
                `${KEY} ${OTHER}`,
                `a ${KEY} ${OTHER} ${NEXT}`,
                `a ${KEY} encrypt encrypt`,
                `a ${KEY} ${KEY}`,
                `a ${KEY}x`,
            ]
            for (const line of bad) {
                let msg = ""
                try {
                    parseKeyFile(`ok ${NEXT}\n${line}\n`, "keys.txt")
                } catch (e) {
                    msg = (e as Error).message
                }
                assert.match(msg, /^keys\.txt:2: /, `refused: ${line.length} chars`)
                assert.ok(!/[0-9a-fA-F]{16}/.test(msg), `a key in the error: ${msg}`)
            }
            assert.throws(() => parseClientKey(`${KEY} extra\n`, "k"), (e: Error) => !e.message.includes(KEY.slice(0, 16)) && /k: expected one key/.test(e.message))
            const f = parseKeyFile(`# rotation under way\nboard  1 ${KEY} ${NEXT} encrypt\nold revoked\nspare open\n`, "k")
            assert.deepEqual([...f.keys.keys()], ["board  1"])
            assert.equal(f.keys.get("board  1")!.keys.length, 2)
            assert.equal(f.keys.get("board  1")!.encrypt, true)
            assert.deepEqual(f.revoked, ["old"])
            assert.deepEqual(f.open, ["spare"])
        })

        it("an id that must encrypt: a client that was not set to encrypt does; one that ignores it is cut", async function () {
            const server = await startServer({ keys: { k1: { keys: [KEY], encrypt: true } } })
            const mitm = cleanup(new Mitm(server.port))
            await mitm.listen()
            let wire = ""
            let strip = false
            mitm.rewrite = (l, dir) => {
                let t = l.toString()
                if (strip && dir === "down" && t.startsWith("!auth ")) t = t.replace(" enc=1", "")
                wire += (dir === "up" ? ">" : "<") + t + "\n"
                return [Buffer.from(t)]
            }
            const client = startClient(mitm.port, "k1", { key: KEY })
            await exchange(server, client, "secret", 3)
            const back = within(client.readline(), 3000, "down")
            await within(server.connection("k1")!.write("secret-down"), 3000, "server write")
            assert.equal(await back, "secret-down")
            assert.ok(!wire.includes("secret"), "no payload in clear")
            assert.match(wire, /<!auth mac=[0-9a-f]{64} enc=1\n/)
            assert.ok(wire.includes("\n>!e") && wire.includes("\n<!e"), "encrypted both ways")
            // A client that does not know enc=1 (the field stripped on the way): its first message closes the link.
            strip = true
            const cut = nextWarning(server, "auth-failed")
            const again = new Promise<void>((r) => client.on("status", (u: boolean) => u && r()))
            server.connection("k1")!.revoke("revoked") // the client reconnects, through the stripping proxy
            await within(again, 3000, "up again, without enc=1")
            void client.write("in-clear").catch(() => {})
            assert.match((await cut).detail, /a message not encrypted, from an id that must encrypt/)
        })

        it("CLI: warns of a key file others can read and of --key on the command line; DEVS_IOT_KEY and --key-file do not; no key in any output", async function () {
            this.timeout(30000)
            const dir = mkdtempSync(join(tmpdir(), "devs-iot-keys-"))
            const file = join(dir, "keys")
            writeFileSync(file, `k1 ${KEY}\nbad1 ${OTHER}\n`)
            chmodSync(file, 0o644)
            const srv = cli(["server", "--port", "0", "--host", "127.0.0.1", "--keys", file, "--timeout", String(T)])
            onCleanup(() => stop(srv))
            const m = await srv.waitFor(/"port":(\d+)|port: (\d+)/, 10000, "stderr")
            const port = Number(m[1] ?? m[2])
            await srv.waitFor(/key file .*keys is accessible to other users \(mode 0644\).*chmod 600/, 5000, "stderr")
            chmodSync(file, 0o600)
            writeFileSync(file, `k1 ${KEY} extra\n`) // one field too many: not reloaded, the key not shown
            srv.child.kill("SIGHUP")
            await srv.waitFor(/keys not reloaded, the old ones stay in use: .*keys:1: id "k1": expected/, 5000, "stderr")
            const byFlag = cli(["client", "--id", "k1", "--port", String(port), "--key", KEY, "--timeout", String(T)])
            onCleanup(() => stop(byFlag))
            await byFlag.waitFor(/--key on the command line is visible to every user of this machine.*DEVS_IOT_KEY.*--key-file/, 10000, "stderr")
            await byFlag.waitFor(/link up/, 10000, "stderr")
            stop(byFlag)
            const keyFile = join(dir, "client.key")
            writeFileSync(keyFile, `# k1's key\n${KEY}\n`)
            chmodSync(keyFile, 0o600)
            const byFile = cli(["client", "--id", "k1", "--port", String(port), "--key-file", keyFile, "--timeout", String(T)])
            onCleanup(() => stop(byFile))
            await byFile.waitFor(/link up/, 10000, "stderr")
            stop(byFile)
            const byEnv = cli(["client", "--id", "k1", "--port", String(port), "--timeout", String(T)], { DEVS_IOT_KEY: KEY })
            onCleanup(() => stop(byEnv))
            await byEnv.waitFor(/link up/, 10000, "stderr")
            stop(byEnv)
            assert.ok(!/visible to every user|accessible to other users/.test(byFile.stderr + byEnv.stderr), byFile.stderr + byEnv.stderr)
            writeFileSync(keyFile, `${KEY} ${OTHER}\n`)
            const badFile = cli(["client", "--id", "k1", "--port", String(port), "--key-file", keyFile])
            onCleanup(() => stop(badFile))
            assert.equal(await within(badFile.exited, 10000, "exit"), 2)
            assert.match(badFile.stderr, /client.key: expected one key of 64 hex digits; got 2 words of 64, 64 characters/)
            for (const out of [srv.stderr, srv.stdout, byFlag.stderr, byFile.stderr, byEnv.stderr, badFile.stderr])
                assert.ok(!out.includes(KEY) && !out.includes(OTHER) && !out.includes(KEY.slice(0, 16)), "a key in the output:\n" + out)
        })
    })

    describe("key rotation without downtime", function () {
        it("API: a next key, the client switched, the old key removed: no line lost or doubled, the old key refused after", async function () {
            const server = await startServer({ keys: { k1: KEY } })
            const client = startClient(server.port, "k1", { key: KEY })
            const conn: Connection = await within(server.clientConn("k1"), 3000, "up")
            const n = 60
            const got: string[] = []
            const reading = (async () => {
                while (got.length < n) got.push(await conn.readline())
            })()
            const writing = (async () => {
                for (let i = 0; i < n; i++) await client.write(`r-${i}`)
            })()
            assert.deepEqual(server.setKeys({ k1: { keys: [KEY, NEXT] } }).ended, [], "step 1: both keys valid")
            const switched = new Promise<void>((r) => server.on("connect", (c: Connection) => c.id === "k1" && server.keyInUse("k1") === 2 && r()))
            client.setKey(NEXT) // step 2: the client switches (reconnects at once)
            await within(switched, 5000, "the client authenticated with the next key")
            assert.deepEqual(server.setKeys({ k1: NEXT }).ended, [], "step 3: the old key removed; nobody was on it")
            assert.equal(server.keyInUse("k1"), 1, "the new key is now the id's only key")
            await within(Promise.all([writing, reading]), 10000, "every line")
            assert.deepEqual(got, Array.from({ length: n }, (_, i) => `r-${i}`), "exactly once, in order")
            const failed = nextWarning(server, "auth-failed")
            startClient(server.port, "k1", { key: KEY })
            assert.match((await failed).detail, /wrong key/, "the old key is refused")
        })

        it("key push (pushKeys): a board on the current key gets the next one and reconnects with it; the old key removed, it still connects; no push to a one-key, plain or not-current link", async function () {
            const log = sink()
            const server = await startServer({ keys: { k1: { keys: [KEY, NEXT] }, k2: OTHER }, pushKeys: true, logger: log.logger })
            const metrics = new Metrics(new Fleet(server))
            onCleanup(() => metrics.close())
            const pushes: string[] = []
            const client = startClient(server.port, "k1", { key: KEY })
            client.on("rekey", () => pushes.push("k1"))
            const pushed = await log.next((r) => r.msg === "key pushed", 5000, "'key pushed' logged at !rekeyed")
            assert.equal(pushed["client"], "k1")
            assert.deepEqual(pushes, ["k1"], "pushed once")
            const { body } = await metrics.text()
            assert.match(body, /^devs_iot_keys_pushed_total 1$/m, "counted in the metrics")
            // Its next connection uses the pushed key.
            const switched = new Promise<void>((r) => server.on("connect", (c: Connection) => c.id === "k1" && server.keyInUse("k1") === 2 && r()))
            server.connection("k1")!.disconnect("test: reconnect")
            await within(switched, 5000, "reconnected with the next key")
            await exchange(server, client, "after", 3)
            // The old key removed (the reload): the client still connects; the old key is refused.
            assert.deepEqual(server.setKeys({ k1: NEXT, k2: OTHER }).ended, [], "nobody was on the old key")
            const again = new Promise<void>((r) => server.on("connect", (c: Connection) => c.id === "k1" && server.keyInUse("k1") === 1 && r()))
            server.connection("k1")!.disconnect("test: reconnect")
            await within(again, 5000, "connects on the only key")
            const failed = nextWarning(server, "auth-failed")
            startClient(server.port, "k1", { key: KEY })
            assert.match((await within(failed, 5000, "refused")).detail, /wrong key/, "the old key is refused")
            // A one-key id and a plain id: never pushed.
            const k2 = startClient(server.port, "k2", { key: OTHER })
            const plain = startClient(server.port, "p")
            k2.on("rekey", () => pushes.push("k2"))
            plain.on("rekey", () => pushes.push("p"))
            await exchange(server, k2, "k2", 2)
            await exchange(server, plain, "p", 2)
            assert.deepEqual(pushes, ["k1"], "only the first push")
            assert.equal(log.records.filter((r) => r.msg === "key pushed").length, 1)
            const all = JSON.stringify(log.records)
            assert.ok(!all.includes(KEY) && !all.includes(NEXT), "no key in the log")
        })

        it("CLI --push-keys: the board takes the next key; the key file then drops the old one + SIGHUP: it connects with the new key", async function () {
            this.timeout(30000)
            const dir = mkdtempSync(join(tmpdir(), "devs-iot-push-"))
            const serverFile = join(dir, "keys")
            writeFileSync(serverFile, `k1 ${KEY} ${NEXT}\n`, { mode: 0o600 })
            const srv = cli(["server", "--port", "0", "--host", "127.0.0.1", "--keys", serverFile, "--push-keys", "--timeout", String(T), "--json"])
            onCleanup(() => stop(srv))
            const port = Number((await srv.waitFor(/"port":(\d+)/, 10000, "stderr"))[1])
            startClient(port, "k1", { key: KEY })
            await srv.waitFor(/"client":"k1"[^\n]*"msg":"key pushed"/, 10000, "stderr")
            writeFileSync(serverFile, `k1 ${NEXT}\n`)
            srv.child.kill("SIGHUP")
            // The session on the old key ends with the reload; the client comes back on the pushed key.
            await srv.waitFor(/"key":1,"msg":"client authenticated"[\s\S]*"key":1,"msg":"client authenticated"/, 10000, "stderr")
            assert.ok(!srv.stderr.includes(KEY) && !srv.stderr.includes(NEXT), "a key in the output")
        })

        it("CLI: the operator's procedure (server key file with the next key + SIGHUP, client key file + SIGHUP, old key removed + SIGHUP)", async function () {
            this.timeout(30000)
            const dir = mkdtempSync(join(tmpdir(), "devs-iot-rot-"))
            const serverFile = join(dir, "keys")
            const clientFile = join(dir, "k1.key")
            writeFileSync(serverFile, `k1 ${KEY}\n`, { mode: 0o600 })
            writeFileSync(clientFile, `${KEY}\n`, { mode: 0o600 })
            const srv = cli(["server", "--port", "0", "--host", "127.0.0.1", "--keys", serverFile, "--timeout", String(T), "--json"])
            onCleanup(() => stop(srv))
            const m = await srv.waitFor(/"port":(\d+)/, 10000, "stderr")
            const port = m[1]!
            const c = cli(["client", "--id", "k1", "--port", port, "--key-file", clientFile, "--timeout", String(T), "--json"])
            onCleanup(() => stop(c))
            await srv.waitFor(/"key":1,"msg":"client authenticated"/, 10000, "stderr")
            writeFileSync(serverFile, `k1 ${KEY} ${NEXT}\n`)
            srv.child.kill("SIGHUP")
            await srv.waitFor(/"ended":0,"msg":"keys reloaded"/, 5000, "stderr")
            writeFileSync(clientFile, `${NEXT}\n`)
            c.child.kill("SIGHUP")
            await c.waitFor(/key re-read: reconnecting with it/, 5000, "stderr")
            await srv.waitFor(/"key":2,"msg":"client authenticated"/, 10000, "stderr")
            writeFileSync(serverFile, `k1 ${NEXT}\n`)
            srv.child.kill("SIGHUP")
            await srv.waitFor(/"ended":0,"msg":"keys reloaded"[\s\S]*"ids":1,"revoked":0,"ended":0,"msg":"keys reloaded"/, 5000, "stderr")
            assert.ok(!/"code":"revoked"/.test(srv.stderr), "no session ended")
            for (const out of [srv.stderr, c.stderr]) assert.ok(!out.includes(KEY) && !out.includes(NEXT), "a key in the output")
        })
    })
})
