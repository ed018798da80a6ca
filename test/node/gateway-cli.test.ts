// `devs-iot gateway` with its embedded broker (Aedes): nothing else
// installed, a board's line shows on its `up` topic to any MQTT client, a
// line published on `down` reaches the board; SIGTERM exits 0.
import assert from "node:assert/strict"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { connect as mqttConnect } from "mqtt"
import { pino } from "pino"
import { Aedes } from "aedes"
import { createServer, type AddressInfo, type Socket } from "node:net"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { Client } from "../../src/server/index.js"
import { Gateway } from "../../src/server/gateway.js"
import { watchCommand } from "../../src/server/cli/main.js"
import { cli, cleanup, closeAll, freePort, onCleanup, until, within } from "../kit/util.js"

// The heap in use after a full collection.
function heapAfterGc(): number {
    setFlagsFromString("--expose-gc")
    ;(runInNewContext("gc") as () => void)()
    return process.memoryUsage().heapUsed
}

describe("devs-iot gateway (embedded broker)", function () {
    this.timeout(30000)
    afterEach(closeAll)

    it("the ready line's watch command fits the broker's URL: port 8883 and CA certificates for mqtts, none for WebSocket", function () {
        assert.equal(watchCommand("mqtt://127.0.0.1:1884"), "mosquitto_sub -h 127.0.0.1 -p 1884 -t 'devs-iot/#' -v")
        assert.equal(watchCommand("mqtt://broker.lan"), "mosquitto_sub -h broker.lan -p 1883 -t 'devs-iot/#' -v")
        assert.equal(watchCommand("mqtts://broker.lan"), "mosquitto_sub -h broker.lan -p 8883 --capath /etc/ssl/certs -t 'devs-iot/#' -v")
        assert.match(watchCommand("wss://broker.lan/mqtt"), /^an MQTT client that speaks WebSocket/)
    })

    it("relays lines both ways through its embedded broker and exits 0 on SIGTERM", async function () {
        const port = await freePort()
        const brokerPort = await freePort()
        const gw = cli(["gateway", "--port", String(port), "--broker-port", String(brokerPort), "--name", "t1"])
        onCleanup(() => gw.stop())
        await gw.waitFor(/ready: watch the boards with: mosquitto_sub/, 15000)
        const mq = mqttConnect(`mqtt://127.0.0.1:${brokerPort}`, { clientId: "cli-test", reconnectPeriod: 0 })
        onCleanup(() => void mq.end(true))
        await within(new Promise<void>((r) => mq.once("connect", () => r())), 5000, "MQTT client connected")
        const got: string[] = []
        let online: () => void = () => undefined
        let upLine: () => void = () => undefined
        const isOnline = new Promise<void>((r) => (online = r))
        const gotLine = new Promise<void>((r) => (upLine = r))
        mq.on("message", (t, p) => {
            if (t.endsWith("/status")) return void (p.toString() === "online" && online())
            got.push(p.toString())
            upLine()
        })
        await mq.subscribeAsync(["devs-iot/c1/up", "devs-iot/c1/status"], { qos: 2 })
        const board = cleanup(new Client({ id: "c1", port }).start())
        await within(board.connected(), 5000, "board connected")
        await within(isOnline, 5000, "board online")
        await within(board.write("hello broker"), 5000, "line taken by the broker")
        await within(gotLine, 5000, "line on devs-iot/c1/up")
        assert.deepEqual(got, ["hello broker"])
        await mq.publishAsync("devs-iot/c1/down", "hello board", { qos: 1 })
        assert.equal(await within(board.readline(), 5000, "line at the board"), "hello board")
        // Any bytes but a newline, as they are (U+FFFD too: it is valid UTF-8).
        await mq.publishAsync("devs-iot/c1/down", "cr\r nul\u0000 \ufffd\r", { qos: 1 })
        assert.equal(await within(board.readline(), 5000, "line at the board"), "cr\r nul\u0000 \ufffd\r")
        // A file published whole ends with a line end: taken off, as the HTTP side does.
        await mq.publishAsync("devs-iot/c1/down", "from a file\r\n", { qos: 1 })
        assert.equal(await within(board.readline(), 5000, "line at the board"), "from a file")
        gw.child.kill("SIGTERM")
        assert.equal(await within(gw.exited, 10000, "gateway exit"), 0)
    })

    it("`server --gateway` reads the gateway's flags: one only the server has is refused, not ignored", async function () {
        const gw = cli(["server", "--gateway", "--app", "demo", "--port", "0"])
        onCleanup(() => gw.stop())
        assert.equal(await within(gw.exited, 10000, "exit"), 2)
        assert.match(gw.stderr, /Unknown option '--app'/)
        const byEnv = cli(["server", "--port", "0"], { DEVS_IOT_GATEWAY: "1", DEVS_IOT_STATE: "/tmp/x" })
        onCleanup(() => byEnv.stop())
        assert.equal(await within(byEnv.exited, 10000, "exit"), 2)
        assert.match(byEnv.stderr, /DEVS_IOT_STATE: not used by the gateway/)
    })

    it("with --keys, a keyed id must authenticate: refused without its key, its lines relayed with it", async function () {
        const key = "5f".repeat(32)
        const dir = mkdtempSync(join(tmpdir(), "devs-iot-gw-keys-"))
        onCleanup(() => rmSync(dir, { recursive: true, force: true }))
        writeFileSync(join(dir, "keys.txt"), `k1 ${key}\n`, { mode: 0o600 })
        const port = await freePort()
        const brokerPort = await freePort()
        const gw = cli(["server", "--gateway", "--keys", join(dir, "keys.txt"), "--port", String(port), "--broker-port", String(brokerPort), "--name", "t2"])
        onCleanup(() => gw.stop())
        await gw.waitFor(/ready: watch the boards/, 15000)
        const plain = cleanup(new Client({ id: "k1", port }).start())
        await gw.waitFor(/auth-re(fused|quired)/, 10000)
        assert.equal(plain.status(), false)
        await plain.close()
        const mq = mqttConnect(`mqtt://127.0.0.1:${brokerPort}`, { clientId: "cli-test-2", reconnectPeriod: 0 })
        onCleanup(() => void mq.end(true))
        await within(new Promise<void>((r) => mq.once("connect", () => r())), 5000, "MQTT client connected")
        const up = new Promise<string>((r) => mq.on("message", (t, p) => t.endsWith("/up") && r(p.toString())))
        await mq.subscribeAsync("devs-iot/k1/up", { qos: 2 })
        const board = cleanup(new Client({ id: "k1", port, key }).start())
        await within(board.connected(), 5000, "keyed board connected")
        await within(board.write("signed"), 5000, "line taken by the broker")
        assert.equal(await within(up, 5000, "line on devs-iot/k1/up"), "signed")
    })

    it("close() while start() is under way leaves nothing open, start() after close() is refused, and a second close() waits for the first", async function () {
        const brokerPort = await freePort()
        const gw = new Gateway({ port: 0, host: "127.0.0.1", brokerPort, name: "t13" })
        const starting = gw.start()
        const closing = gw.close()
        let closed = false
        void closing.then(() => (closed = true))
        await within(gw.close(), 10000, "second close")
        assert.equal(closed, true, "the second close() resolved before the first")
        await assert.rejects(within(starting, 10000, "start"), { code: "ECLOSED" })
        await assert.rejects(within(gw.start(), 10000, "start after close"), { code: "ECLOSED" })
        // The embedded broker, started after close() was called, was closed again.
        const s = connect({ port: brokerPort, host: "127.0.0.1" })
        const err = await within(new Promise<NodeJS.ErrnoException>((r) => s.once("error", r)), 5000, "connect to the broker")
        assert.equal(err.code, "ECONNREFUSED")
    })

    it("a board id the server evicts for room takes its gateway session with it", async function () {
        const gw = new Gateway({ port: 0, host: "127.0.0.1", brokerPort: 0, name: "t3", limits: { maxClients: 3, newIdRate: 1000, newIdBurst: 1000 } })
        onCleanup(() => gw.close())
        await gw.start()
        for (let i = 0; i < 12; i++) {
            const gone = new Promise<void>((r) => {
                const f = (c: { id: string }) => c.id === "v" + i && (gw.server.off("disconnect", f), r())
                gw.server.on("disconnect", f)
            })
            const c = cleanup(new Client({ id: "v" + i, port: gw.port }).start())
            await within(c.connected(), 10000, `v${i} up`)
            await c.close()
            await within(gone, 10000, `v${i} down`)
        }
        const sessions = (gw as unknown as { sessions: Map<string, unknown> }).sessions
        assert.deepEqual([...sessions.keys()].sort(), gw.server.connections().map((c) => c.id).sort())
    })

    // Every gateway reads every board's link record: those of ids it does not
    // hold are kept up to 4 x maxClients, the least recently updated dropped.
    it("link records of ids held elsewhere are kept up to 4 x maxClients, the oldest dropped, never one of an id it holds", async function () {
        const gw = new Gateway({ port: 0, host: "127.0.0.1", brokerPort: 0, name: "t14", limits: { maxClients: 1 } })
        onCleanup(() => gw.close())
        await gw.start()
        const board = cleanup(new Client({ id: "held", port: gw.port }).start())
        await within(board.connected(), 10000, "held up")
        const pub = mqttConnect(`mqtt://127.0.0.1:${gw.brokerPort}`, { clientId: "t14-pub" })
        onCleanup(() => void pub.end(true))
        const ids = ["held", ...Array.from({ length: 10 }, (_, i) => "other" + i)]
        for (const id of ids) await pub.publishAsync(`devs-iot/$link/${id}`, "0123abcd b1", { qos: 1, retain: true })
        await until(() => gw.epochs.has("other9"), 10000, "the last record read")
        assert.deepEqual([...gw.epochs.keys()].sort(), ["held", "other7", "other8", "other9"])
        assert.deepEqual([...gw.boardEpochs.keys()].sort(), ["held", "other7", "other8", "other9"])
        for (const id of ids) await pub.publishAsync(`devs-iot/$link/${id}`, "", { qos: 1, retain: true })
    })

    it("board ids that cannot be a topic level are refused before their handshake, as bad ids (warned at a rate)", async function () {
        const gw = new Gateway({ port: 0, host: "127.0.0.1", brokerPort: 0, name: "t4" })
        onCleanup(() => gw.close())
        await gw.start()
        const bad: string[] = []
        gw.server.on("warning", (w) => w.code === "bad-id" && bad.push(w.id ?? ""))
        for (const id of ["x/1", "+2", "#3", "$sys4"]) {
            const s = connect(gw.port, "127.0.0.1")
            s.on("error", () => undefined)
            onCleanup(() => void s.destroy())
            s.write(`${id}\n`)
            await within(new Promise<void>((r) => s.once("close", () => r())), 5000, `${id} refused`)
        }
        assert.deepEqual(bad, ["x/1", "+2", "#3", "$sys4"])
        assert.deepEqual(gw.server.connections(), [])
    })

    it("down messages refused at any rate are logged at the server's warning rate, and counted", async function () {
        const lines: string[] = []
        const logger = pino({ level: "warn" }, { write: (l: string) => void lines.push(l) })
        const gw = new Gateway({ port: 0, host: "127.0.0.1", brokerPort: 0, name: "t6", logger, limits: { maxWarningsPerSecond: 2 } })
        onCleanup(() => gw.close())
        await gw.start()
        const mq = mqttConnect(`mqtt://127.0.0.1:${gw.brokerPort}`, { clientId: "cli-test-6", reconnectPeriod: 0 })
        onCleanup(() => void mq.end(true))
        const online = new Promise<void>((r) => mq.on("message", (_t, p) => p.toString() === "online" && r()))
        await within(mq.subscribeAsync("devs-iot/w1/status", { qos: 1 }), 5000, "subscribed")
        const board = cleanup(new Client({ id: "w1", port: gw.port }).start())
        await within(online, 5000, "board online")
        const start = performance.now()
        const n = 300
        await within(Promise.all(Array.from({ length: n }, () => mq.publishAsync("devs-iot/w1/down", "", { qos: 1 }))), 20000, "published")
        await mq.publishAsync("devs-iot/w1/down", "after", { qos: 1 })
        assert.equal(await within(board.readline(), 10000, "the line after them"), "after")
        const seconds = (performance.now() - start) / 1000
        assert.equal(gw.counts.downRefused, n)
        const logged = lines.filter((l) => l.includes('"bad-down"')).length
        assert.ok(logged >= 1 && logged <= 3 + 2 * seconds, `${logged} bad-down lines logged in ${seconds.toFixed(1)} s`)
    })

    it("the embedded broker's accept failures (EMFILE) are logged, not thrown: the gateway goes on", async function () {
        const lines: string[] = []
        const logger = pino({ level: "warn" }, { write: (l: string) => void lines.push(l) })
        const gw = new Gateway({ port: 0, host: "127.0.0.1", brokerPort: 0, name: "t7", logger })
        onCleanup(() => gw.close())
        await gw.start()
        const net = (gw as unknown as { broker: { net: { emit(e: string, x: Error): boolean } } }).broker.net
        for (let i = 0; i < 3; i++) net.emit("error", Object.assign(new Error("accept EMFILE"), { code: "EMFILE" }))
        assert.equal(lines.filter((l) => l.includes("accept EMFILE")).length, 1, "logged once in its interval")
        const mq = mqttConnect(`mqtt://127.0.0.1:${gw.brokerPort}`, { clientId: "cli-test-7", reconnectPeriod: 0 })
        onCleanup(() => void mq.end(true))
        await within(new Promise<void>((r) => mq.once("connect", () => r())), 5000, "an MQTT client connects after")
    })

    // The gateway remembers the last 512 down packets of a board, to know a
    // broker's resend: not their payloads, which could be 64 KB each.
    it("down lines the board has taken are not kept in the gateway's memory", async function () {
        const gw = new Gateway({ port: 0, host: "127.0.0.1", brokerPort: 0, name: "t8" })
        onCleanup(() => gw.close())
        await gw.start()
        const mq = mqttConnect(`mqtt://127.0.0.1:${gw.brokerPort}`, { clientId: "cli-test-8", reconnectPeriod: 0 })
        onCleanup(() => void mq.end(true))
        const online = new Promise<void>((r) => mq.on("message", (_t, p) => p.toString() === "online" && r()))
        await within(mq.subscribeAsync("devs-iot/m1/status", { qos: 1 }), 5000, "subscribed")
        const board = cleanup(new Client({ id: "m1", port: gw.port }).start())
        await within(online, 5000, "board online")
        const n = 200
        const before = heapAfterGc()
        for (let i = 0; i < n; i++) await mq.publishAsync("devs-iot/m1/down", String(i).padStart(60000, "x"), { qos: 1 })
        let got = 0
        for await (const _ of board) if (++got === n) break
        await until(() => gw.counts.downDone === n, 10000, "all ACKed by the board")
        const grown = heapAfterGc() - before
        assert.ok(grown < (n * 60000) / 3, `the heap grew by ${(grown / 1e6).toFixed(1)} MB for ${n} lines of 60 KB the board has`)
    })

    // MQTT 3.1.1 refuses a subscription with return code 0x80 (Mosquitto 2.0
    // grants one its ACL denies and drops the messages instead). The broker
    // here refuses the first two: the gateway asks again.
    it("a broker that refuses the subscription to a board's down topic: logged, no 'online' until it is granted, asked again", async function () {
        let refusals = 2
        const broker = await Aedes.createBroker({ authorizeSubscribe: (_c, sub, cb) => cb(null, sub.topic === "devs-iot/s1/down" && refusals-- > 0 ? (null as never) : sub) })
        const net = createServer(broker.handle as never)
        await new Promise<void>((r) => net.listen(0, "127.0.0.1", r))
        onCleanup(() => new Promise<void>((r) => (net.close(), broker.close(() => r()))))
        const brokerPort = (net.address() as { port: number }).port
        const lines: string[] = []
        const statuses: string[] = []
        const logger = pino({ level: "warn" }, { write: (l: string) => void lines.push(`${l} (statuses then: ${statuses.join(",")})`) })
        const gw = new Gateway({ port: 0, host: "127.0.0.1", mqtt: `mqtt://127.0.0.1:${brokerPort}`, name: "t9", logger })
        onCleanup(() => gw.close())
        await gw.start()
        const app = mqttConnect(`mqtt://127.0.0.1:${brokerPort}`, { clientId: "cli-test-9", reconnectPeriod: 0 })
        onCleanup(() => void app.end(true))
        let online: () => void = () => undefined
        const isOnline = new Promise<void>((r) => (online = r))
        app.on("message", (_t, p) => statuses.push(p.toString()) && p.toString() === "online" && online())
        await within(app.subscribeAsync("devs-iot/s1/status", { qos: 1 }), 5000, "subscribed")
        const board = cleanup(new Client({ id: "s1", port: gw.port }).start())
        await within(board.connected(), 5000, "board up")
        await within(isOnline, 10000, "online once the subscription is granted")
        const failed = lines.filter((l) => /subscribing to devs-iot\/s1\/down failed/.test(l))
        assert.ok(failed.length >= 1 && failed.every((l) => !l.includes("statuses then: online")), lines.join(""))
        await app.publishAsync("devs-iot/s1/down", "down line", { qos: 1 })
        assert.equal(await within(board.readline(), 5000, "a down line at the board"), "down line")
    })

    it("a broker that refuses the gateway's own subscriptions (took notices, link records): logged, naming them", async function () {
        const broker = await Aedes.createBroker({ authorizeSubscribe: (_c, sub, cb) => cb(null, sub.topic === "devs-iot/$link/+" ? (null as never) : sub) })
        const net = createServer(broker.handle as never)
        await new Promise<void>((r) => net.listen(0, "127.0.0.1", r))
        onCleanup(() => new Promise<void>((r) => (net.close(), broker.close(() => r()))))
        const lines: string[] = []
        const logger = pino({ level: "warn" }, { write: (l: string) => void lines.push(l) })
        const gw = new Gateway({ port: 0, host: "127.0.0.1", mqtt: `mqtt://127.0.0.1:${(net.address() as { port: number }).port}`, name: "t12", logger })
        onCleanup(() => gw.close())
        await gw.start()
        await until(() => lines.some((l) => l.includes("refused this gateway's subscription to devs-iot/$link/+:")), 5000, "the refusal logged")
    })

    it("two gateways with the same name: they back off from each other and the log names the likely cause", async function () {
        const lines: string[] = []
        const logger = pino({ level: "warn" }, { write: (l: string) => void lines.push(l) })
        const a = new Gateway({ port: 0, host: "127.0.0.1", brokerPort: 0, name: "twin", logger })
        onCleanup(() => a.close())
        await a.start()
        const b = new Gateway({ port: 0, host: "127.0.0.1", mqtt: `mqtt://127.0.0.1:${a.brokerPort}`, name: "twin", logger })
        onCleanup(() => b.close())
        await b.start()
        await until(() => lines.some((l) => l.includes('"failures":4') && l.includes("another gateway running with --name twin")), 20000, "a fourth failure in a row, with the hint")
    })

    it("a client that takes a board's MQTT session (its client id) over: logged, and the gateway takes it back", async function () {
        const lines: string[] = []
        const logger = pino({ level: "warn" }, { write: (l: string) => void lines.push(l) })
        const gw = new Gateway({ port: 0, host: "127.0.0.1", brokerPort: 0, name: "t10", logger })
        onCleanup(() => gw.close())
        await gw.start()
        const app = mqttConnect(`mqtt://127.0.0.1:${gw.brokerPort}`, { clientId: "cli-test-10", reconnectPeriod: 0 })
        onCleanup(() => void app.end(true))
        let onOnline: () => void = () => undefined
        app.on("message", (_t, p) => p.toString() === "online" && onOnline())
        let online = new Promise<void>((r) => (onOnline = r))
        await within(app.subscribeAsync("devs-iot/h1/status", { qos: 1 }), 5000, "subscribed")
        const board = cleanup(new Client({ id: "h1", port: gw.port }).start())
        await within(online, 5000, "board online")
        online = new Promise<void>((r) => (onOnline = r))
        const thief = mqttConnect(`mqtt://127.0.0.1:${gw.brokerPort}`, { clientId: "devs-iot-h1", clean: false, reconnectPeriod: 0 })
        onCleanup(() => void thief.end(true))
        await until(() => lines.some((l) => l.includes("another client uses its client id devs-iot-h1")), 10000, "the takeover logged")
        await within(online, 10000, "the board's session back")
        await app.publishAsync("devs-iot/h1/down", "still here", { qos: 1 })
        assert.equal(await within(board.readline(), 5000, "a down line at the board"), "still here")
    })

    // The embedded broker sends a session's unacknowledged messages again
    // when it reconnects; the board has the line (not yet ACKed).
    it("a down line the board holds unread when its MQTT session reconnects reaches it once", async function () {
        const gw = new Gateway({ port: 0, host: "127.0.0.1", brokerPort: 0, name: "t11", timeout: 20000 })
        onCleanup(() => gw.close())
        await gw.start()
        const app = mqttConnect(`mqtt://127.0.0.1:${gw.brokerPort}`, { clientId: "cli-test-11", reconnectPeriod: 0 })
        onCleanup(() => void app.end(true))
        let onOnline: () => void = () => undefined
        app.on("message", (_t, p) => p.toString() === "online" && onOnline())
        let online = new Promise<void>((r) => (onOnline = r))
        await within(app.subscribeAsync("devs-iot/u1/status", { qos: 1 }), 5000, "subscribed")
        const board = cleanup(new Client({ id: "u1", port: gw.port, timeout: 20000, ackDelay: 5000 }).start())
        await within(online, 5000, "board online")
        await app.publishAsync("devs-iot/u1/down", "held", { qos: 1 })
        await until(() => board.queued().in >= 1, 5000, "the line at the board, unread")
        online = new Promise<void>((r) => (onOnline = r))
        const session = (gw as unknown as { sessions: Map<string, { mqtt: { stream: { destroy(): void } } }> }).sessions.get("u1")!
        session.mqtt.stream.destroy()
        await within(online, 10000, "the session back")
        await app.publishAsync("devs-iot/u1/down", "end", { qos: 1 })
        const got: string[] = []
        for await (const l of board) if (got.push(l) && l === "end") break
        assert.deepEqual(got, ["held", "end"])
    })

    it("a password in --mqtt: warned that the command line shows it, and never logged", async function () {
        const dead = await freePort() // nothing listens: the gateway starts anyway and retries
        const gw = cli(["gateway", "--mqtt", `mqtt://gw:s3cret-pw@127.0.0.1:${dead}`, "--port", "0", "--name", "t5", "--log-level", "debug"])
        onCleanup(() => gw.stop())
        await gw.waitFor(/ready: watch the boards/, 15000)
        await gw.waitFor(/broker connection lost or refused/, 15000)
        assert.match(gw.stderr, /--mqtt with a password on the command line is visible to every user/)
        assert.doesNotMatch(gw.stderr, /s3cret-pw/)
    })

    it("SIGINT or SIGTERM while the start waits for a broker that does not answer exits at once with 130 or 143, and says so", async function () {
        // Accepts the gateway's connection and never answers: the start waits (up to 1 s) for the broker's version.
        const held: Socket[] = []
        const silent = createServer((s) => void held.push(s))
        onCleanup(() => {
            for (const s of held) s.destroy()
            silent.close()
        })
        await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()))
        const brokerPort = (silent.address() as AddressInfo).port
        for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
            for (let attempt = 1; ; attempt++) {
                const accepted = new Promise<void>((r) => silent.once("connection", () => r()))
                const gw = cli(["gateway", "--mqtt", `mqtt://127.0.0.1:${brokerPort}`, "--port", "0", "--name", "t6", "--json"])
                onCleanup(() => gw.stop())
                await within(accepted, 15000, "the gateway's connection to the broker")
                process.kill(gw.child.pid!, sig)
                const exit = await within(gw.exited, 10000, `the gateway's exit after ${sig}`)
                // The start ended first (a loaded machine, past the 1 s): a clean shutdown; try again.
                if (exit === 0 && /"msg":"gateway listening"/.test(gw.stderr) && attempt < 5) continue
                assert.equal(exit, code, gw.stderr)
                assert.match(gw.stderr, new RegExp(`"signal":"${sig}","msg":"${sig} before the start was complete: exiting now"`))
                break
            }
        }
    })

    it("a bad broker URL exits 2 naming it", async function () {
        const gw = cli(["gateway", "--mqtt", "http://x", "--port", "0"])
        onCleanup(() => gw.stop())
        assert.equal(await within(gw.exited, 10000, "exit"), 2)
        assert.match(gw.stderr, /mqtt: not a broker URL \(protocol http: is not mqtt:/)
        // Without a scheme, "host:port" reads as a scheme: the message says what a URL looks like.
        for (const given of ["localhost:1883", "127.0.0.1:1883"]) {
            const bare = cli(["gateway", "--mqtt", given, "--port", "0"])
            onCleanup(() => bare.stop())
            assert.equal(await within(bare.exited, 10000, "exit"), 2)
            assert.match(bare.stderr, /not a broker URL \(.*; it starts with mqtt:\/\/ \(mqtt:\/\/host:1883\)\)/)
        }
    })
})
