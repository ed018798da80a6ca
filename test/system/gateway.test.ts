// The MQTT gateway against a real Mosquitto: lines both ways, exactly once
// as seen by plain MQTT subscribers and by the board, across a gateway
// killed (SIGKILL) and restarted, and a broker restart.
import assert from "node:assert/strict"
import { connect, createServer, type Socket } from "node:net"
import { connect as mqttConnect } from "mqtt"
import { Client, type ClientOptions } from "../../src/server/index.js"
import { pino } from "pino"
import { Gateway } from "../../src/server/gateway.js"
import { cli, cleanup, closeAll, onCleanup, until, within, type Cli } from "../kit/util.js"
import { gatewayPort } from "../kit/gatewaysoak.js"
import { Mosquitto } from "../kit/mosquitto.js"
import { Deliveries } from "../kit/deliveries.js"
import { V1Client } from "../kit/v1peer.js"
import { mqttClient, statusOnline } from "../kit/mqtt.js"

function gatewayProcess(broker: string, port: number, name: string, more: string[] = []): Cli {
    const g = cli(["gateway", "--mqtt", broker, "--host", "127.0.0.1", "--port", String(port), "--name", name, "--log-level", "debug", ...more])
    onCleanup(() => {
        if (g.child.exitCode === null && g.child.signalCode === null) g.stop()
    })
    return g
}

// The broker's retained messages under `filter` now (topic -> payload):
// Mosquitto sends them after the SUBACK, before the UNSUBACK.
async function retainedNow(url: string, filter: string): Promise<Map<string, string>> {
    const c = await mqttClient(url, `test-retained-${process.pid}`, true)
    const got = new Map<string, string>()
    c.on("message", (t, p, packet) => packet.retain && got.set(t, p.toString()))
    await c.subscribeAsync(filter, { qos: 1 })
    await c.unsubscribeAsync(filter)
    await c.endAsync()
    return got
}

// Each topic's last payload under `filters` as the broker delivers it (the
// retained ones at the subscribe, then every change; "" once cleared), and
// the ids at topic level `level` that still have one.
async function watchTopics(url: string, filters: string[], name: string): Promise<(level: number, prefix: string) => string[]> {
    const c = await mqttClient(url, `test-watch-${name}-${process.pid}`, true)
    const last = new Map<string, string>()
    c.on("message", (topic, p) => last.set(topic, p.toString()))
    await c.subscribeAsync(filters, { qos: 1 })
    return (level, prefix) => [...last].filter(([topic, p]) => p !== "" && topic.startsWith(prefix)).map(([topic]) => topic.split("/")[level]!).sort()
}

// Whether the broker keeps a session for MQTT client id `clientId`.
async function sessionKept(url: string, clientId: string): Promise<boolean> {
    const c = mqttConnect(url, { clientId, clean: false, reconnectPeriod: 0 })
    onCleanup(() => void c.end(true))
    const connack = await within(new Promise<{ sessionPresent: boolean }>((r) => c.once("connect", r)), 10000, `MQTT ${clientId} connected`)
    await c.endAsync()
    return connack.sessionPresent
}

// Counts of each payload seen; `until(p)` resolves when p has been seen.
class Seen {
    counts = new Map<string, number>()
    private waiters: Array<[string, () => void]> = []
    add(p: string): void {
        this.counts.set(p, (this.counts.get(p) ?? 0) + 1)
        for (const w of this.waiters.filter((x) => x[0] === p)) w[1]()
        this.waiters = this.waiters.filter((x) => x[0] !== p)
    }
    until(p: string, ms: number): Promise<void> {
        if (this.counts.has(p)) return Promise.resolve()
        return within(new Promise<void>((r) => this.waiters.push([p, r])), ms, `${p} seen`)
    }
    check(prefix: string, n: number): void {
        const lost: string[] = []
        const dup: string[] = []
        for (let i = 0; i < n; i++) {
            const c = this.counts.get(prefix + i) ?? 0
            if (c === 0) lost.push(prefix + i)
            if (c > 1) dup.push(`${prefix + i} x${c}`)
        }
        assert.deepEqual({ lost, dup }, { lost: [], dup: [] }, "each line exactly once")
    }
}

// A proxy on loopback to `targetPort`: each accepted socket is piped to a
// new connection there by wire(); either end closing closes both.
abstract class PipeProxy {
    port = 0
    private net = createServer((c) => this.accept(c))
    private sockets = new Set<Socket>()

    constructor(readonly targetPort: number) {}

    async listen(): Promise<void> {
        await new Promise<void>((r) => this.net.listen(0, "127.0.0.1", r))
        const a = this.net.address()
        this.port = typeof a === "object" && a ? a.port : 0
    }

    // `c`: from the client, `s`: to the target.
    protected abstract wire(c: Socket, s: Socket): void

    private accept(c: Socket): void {
        const s = connect(this.targetPort, "127.0.0.1")
        for (const x of [c, s]) {
            this.sockets.add(x)
            x.on("error", () => undefined)
            x.on("close", () => {
                this.sockets.delete(x)
                c.destroy()
                s.destroy()
            })
        }
        this.wire(c, s)
    }

    close(): void {
        this.net.close()
        for (const x of this.sockets) x.destroy()
    }
}

// A TCP proxy between a gateway and the broker that passes the broker's
// packets and the gateway's, up to the gateway's PUBREL for packet id
// `pid` after a PUBLISH with that id (a PUBREL the gateway sends ahead of
// a board's first line, for ids it has not published, passes): from there
// on it holds back what the gateway sends (dropped when either side
// closes). A gateway killed now died between the ACK to the board (on
// PUBREC) and the PUBREL.
class PubrelHold extends PipeProxy {
    readonly held: Promise<void>
    private heldNow!: () => void

    constructor(
        targetPort: number,
        readonly pid: number,
    ) {
        super(targetPort)
        this.held = new Promise((r) => (this.heldNow = r))
    }

    protected wire(c: Socket, s: Socket): void {
        s.on("data", (b: Buffer) => c.write(b))
        let buf = Buffer.alloc(0)
        let holding = false
        let published = false
        c.on("data", (b: Buffer) => {
            if (holding) return
            buf = Buffer.concat([buf, b])
            let off = 0 // whole packets before it pass
            while (off < buf.length) {
                // Fixed header: type and flags, then the remaining length (1..4 bytes, 7 bits each).
                let len = 0
                let i = off + 1
                let mul = 1
                for (; i < buf.length; i++) {
                    len += (buf[i]! & 0x7f) * mul
                    mul *= 128
                    if ((buf[i]! & 0x80) === 0) break
                }
                if (i >= buf.length || i + 1 + len > buf.length) break
                // PUBLISH at QoS 1 or 2: topic length, topic, packet id.
                if (buf[off]! >> 4 === 3 && (buf[off]! & 6) !== 0 && buf.readUInt16BE(i + 3 + buf.readUInt16BE(i + 1)) === this.pid) published = true
                if (published && buf[off]! >> 4 === 6 && len >= 2 && buf.readUInt16BE(i + 1) === this.pid) {
                    holding = true
                    this.heldNow()
                    break
                }
                off = i + 1 + len
            }
            s.write(buf.subarray(0, off))
            buf = holding ? Buffer.alloc(0) : buf.subarray(off)
        })
    }
}

// A TCP proxy between a board and its gateway; once frozen it passes
// nothing more from the gateway to the board (its ACKs are lost). It ends
// the board's socket when the gateway's ends.
class AckFreeze extends PipeProxy {
    frozen = false

    protected wire(c: Socket, s: Socket): void {
        c.on("data", (b: Buffer) => s.write(b))
        s.on("data", (b: Buffer) => this.frozen || c.write(b))
    }
}

describe("MQTT gateway with Mosquitto", function () {
    this.timeout(120000)
    afterEach(closeAll)
    let broker: Mosquitto

    beforeEach(async function () {
        broker = cleanup(new Mosquitto())
        await broker.start()
    })

    // Two gateways; gateway 1 reaches the broker through a proxy that holds
    // back its PUBREL for packet id `pid`; a subscriber on board `id`'s up topic.
    async function heldPubrel(pid: number, id: string) {
        const hold = new PubrelHold(broker.port, pid)
        await hold.listen()
        onCleanup(() => hold.close())
        const g1 = gatewayProcess(`mqtt://127.0.0.1:${hold.port}`, 0, "g1")
        const g2 = gatewayProcess(broker.url, 0, "g2")
        const [p1, p2] = await Promise.all([gatewayPort(g1), gatewayPort(g2)])
        const sub = await mqttClient(broker.url, `test-sub-${id}`)
        const lines: string[] = []
        const seen = new Deliveries()
        sub.on("message", (_t, p, packet) => {
            lines.push(p.toString())
            seen.add(p.toString(), packet)
        })
        await sub.subscribeAsync(`devs-iot/${id}/up`, { qos: 2 })
        return { p1, p2, hold, g1, g2, lines, seen }
    }

    async function upRun(fault: (step: () => Promise<void>) => Promise<void>, id: string): Promise<void> {
        let gw = gatewayProcess(broker.url, 0, "g1")
        const port = await gatewayPort(gw)
        const sub = await mqttClient(broker.url, `test-sub-${id}`)
        const seen = new Deliveries()
        sub.on("message", (_t, p, packet) => seen.add(p.toString(), packet))
        await sub.subscribeAsync(`devs-iot/${id}/up`, { qos: 2 })
        const board = cleanup(new Client({ id, port, backoffFirst: 50, backoffCap: 300 }).start())
        await board.connected()
        const N = 300
        const killGateway = async () => {
            gw.stop() // SIGKILL, lines in flight
            await gw.exited
            gw = gatewayProcess(broker.url, port, "g1")
        }
        for (let i = 0; i < N; i += 20) {
            if (i === 100 || i === 200) await fault(i === 100 ? killGateway : () => broker.restart())
            const batch: Promise<void>[] = []
            for (let j = i; j < i + 20; j++) batch.push(board.write("u" + j, { wait: false }))
            await within(Promise.all(batch), 60000, `lines ${i}..${i + 19} ACKed to the board`)
        }
        await board.write("end")
        await within(seen.wait("end"), 30000, "end seen")
        const r = seen.check(Array.from({ length: N }, (_, i) => "u" + i))
        // Mosquitto's own resends after its restart are reported, not blamed on the gateway.
        if (r.brokerResends > 0) console.log(`      (Mosquitto resent ${r.brokerResends} completed deliveries to the subscriber after its restart)`)
        assert.deepEqual({ lost: r.lost, publishedTwice: r.publishedTwice }, { lost: [], publishedTwice: [] }, "each line published once, none lost")
    }

    // `faultAt`: the line numbers before which `fault` runs (the gateway
    // kill, or else the broker restart, at the first; the broker restart at
    // the others).
    async function downRun(fault: (step: () => Promise<void>) => Promise<void>, id: string, faultAt = [100, 200]): Promise<void> {
        let gw = gatewayProcess(broker.url, 0, "g1")
        const port = await gatewayPort(gw)
        const board = cleanup(new Client({ id, port, backoffFirst: 50, backoffCap: 300 }).start())
        await board.connected()
        const pub = await mqttClient(broker.url, `test-pub-${id}`)
        // The board's session has subscribed once its status says online.
        const online = statusOnline(pub)
        await pub.subscribeAsync(`devs-iot/${id}/status`, { qos: 1 })
        await online
        const seen = new Seen()
        void (async () => {
            for await (const l of board) seen.add(l)
        })()
        // The board's session subscribed: a first line comes through.
        await pub.publishAsync(`devs-iot/${id}/down`, "start", { qos: 1 })
        await seen.until("start", 30000)
        const N = 300
        const killGateway = async () => {
            gw.stop()
            await gw.exited
            gw = gatewayProcess(broker.url, port, "g1")
        }
        for (let i = 0; i < N; i += 20) {
            if (faultAt.includes(i)) await fault(i === 100 || faultAt.length > 2 ? killGateway : () => broker.restart())
            const batch: Promise<unknown>[] = []
            for (let j = i; j < i + 20; j++) batch.push(pub.publishAsync(`devs-iot/${id}/down`, "d" + j, { qos: 1 }))
            await within(Promise.all(batch), 60000, `down lines ${i}..${i + 19} taken by the broker`)
        }
        await pub.publishAsync(`devs-iot/${id}/down`, "end", { qos: 1 })
        await seen.until("end", 30000)
        seen.check("d", N)
    }

    // Which faults a run applies: the gateway kill (at line 100), the broker restart (at 200).
    const killOnly = async (step: () => Promise<void>) => {
        if (step.name === "killGateway") await step()
    }
    const restartOnly = async (step: () => Promise<void>) => {
        if (step.name !== "killGateway") await step()
    }

    it("publisher -> board: each line once, no fault", async function () {
        await downRun(async () => undefined, "bd0")
    })

    it("publisher -> board: a flood of 6,000 lines, more than the link queues (4,096), all arrive in order", async function () {
        const gw = gatewayProcess(broker.url, 0, "g1")
        const port = await gatewayPort(gw)
        const board = cleanup(new Client({ id: "bf1", port }).start())
        await board.connected()
        const pub = await mqttClient(broker.url, "test-pub-bf1")
        const online = within(new Promise<void>((r) => pub.on("message", (_t, p) => p.toString() === "online" && r())), 30000, "board online")
        await pub.subscribeAsync("devs-iot/bf1/status", { qos: 1 })
        await online
        const N = 6000
        const got: string[] = []
        const all = new Promise<void>((r) => {
            void (async () => {
                for await (const l of board) if (got.push(l) === N) r()
            })()
        })
        const sends: Promise<unknown>[] = []
        for (let i = 0; i < N; i++) sends.push(pub.publishAsync("devs-iot/bf1/down", "f" + i, { qos: 1 }))
        await within(Promise.all(sends), 120000, "all taken by the broker")
        await within(all, 120000, () => `${N} lines at the board (got ${got.length})`)
        assert.deepEqual(got, Array.from({ length: N }, (_, i) => "f" + i))
    })

    it("board -> subscriber: each line once across a gateway SIGKILL and restart", async function () {
        await upRun(killOnly, "bu1")
    })

    // The board's first line (link id 00, packet id 1) is ACKed on PUBREC and
    // its gateway dies before the PUBREL. The next gateway releases the
    // packet ids before the first line it holds (01): 00 among them.
    it("board -> subscriber: the first line, ACKed, reaches the subscriber though its gateway died before the PUBREL", async function () {
        const { p1, p2, hold, g1, g2, lines, seen } = await heldPubrel(1, "bp1")
        const board = cleanup(new Client({ id: "bp1", host: `127.0.0.1:${p1},127.0.0.1:${p2}`, backoffFirst: 50, backoffCap: 300 }).start())
        await board.connected()
        await g1.waitFor(/link up.*bp1/, 10000)
        await within(board.write("first"), 30000, "first ACKed to the board")
        await within(hold.held, 10000, "gateway 1's PUBREL for packet id 1 held back")
        g1.stop() // SIGKILL: its PUBREL never reaches the broker
        await g1.exited
        await g2.waitFor(/link up.*bp1/, 20000)
        await within(board.write("second"), 30000, "second ACKed to the board")
        // Gateway 2 holds "second" before or after its session is up: either
        // way "first" is released (PUBCOMP) before "second" is published.
        await within(seen.wait("second"), 30000, "second at the subscriber")
        assert.deepEqual(lines, ["first", "second"], "first, then second, at the subscriber")
        const r = seen.check(["first", "second"])
        assert.deepEqual({ lost: r.lost, publishedTwice: r.publishedTwice }, { lost: [], publishedTwice: [] })
    })

    // Several lines ACKed and left unreleased by a dead gateway: the next
    // one releases them oldest first, as the broker delivers on PUBREL.
    it("board -> subscriber: lines ACKed and left unreleased by a dead gateway reach the subscriber in order", async function () {
        const { p1, p2, hold, g1, g2, lines, seen } = await heldPubrel(1, "bo1")
        const board = cleanup(new Client({ id: "bo1", host: `127.0.0.1:${p1},127.0.0.1:${p2}`, backoffFirst: 50, backoffCap: 300, window: 8 }).start())
        await board.connected()
        await g1.waitFor(/link up.*bo1/, 10000)
        const acked = ["f0", "f1", "f2", "f3", "f4"].map((l) => board.write(l, { wait: false }))
        await within(hold.held, 10000, "gateway 1's PUBRELs held back")
        g1.stop() // SIGKILL: the lines it had PUBREC'd stay in the broker, unreleased
        await g1.exited
        await g2.waitFor(/link up.*bo1/, 20000)
        await within(Promise.all(acked), 30000, "f0..f4 ACKed to the board")
        await within(board.write("next"), 30000, "next ACKed to the board")
        await within(seen.wait("next"), 30000, "next at the subscriber")
        assert.deepEqual(lines, ["f0", "f1", "f2", "f3", "f4", "next"], "in order at the subscriber")
        const r = seen.check(["f0", "f1", "f2", "f3", "f4", "next"])
        assert.deepEqual({ lost: r.lost, publishedTwice: r.publishedTwice }, { lost: [], publishedTwice: [] })
    })

    // A board restarts (new epoch, link ids from 00 again) after its
    // gateway died with an ACKed line (packet id 3) not yet released. The
    // new life's lines reuse packet ids 1, 2, 3: Mosquitto drops a line it
    // holds under a reused id ("Reused message ID"), so the next gateway
    // releases every id of the earlier life before the new life's first line.
    it("board -> subscriber: a restarted board's lines do not make the broker drop an ACKed line its dead gateway left unreleased", async function () {
        const { p1, p2, hold, g1, lines, seen } = await heldPubrel(3, "br1")
        const first = new Client({ id: "br1", port: p1, backoffFirst: 50, backoffCap: 300 }).start()
        onCleanup(() => void first.close())
        await first.connected()
        for (const l of ["a0", "a1", "a2"]) await within(first.write(l), 30000, `${l} ACKed to the board`)
        await within(hold.held, 10000, "gateway 1's PUBREL for packet id 3 held back")
        g1.stop() // SIGKILL: a2 stays in the broker, waiting for its PUBREL
        await g1.exited
        await first.close()
        // The board restarts: a new Client is a new life (epoch), its link ids from 00.
        const board = cleanup(new Client({ id: "br1", port: p2, backoffFirst: 50, backoffCap: 300 }).start())
        await board.connected()
        for (const l of ["b0", "b1", "b2", "b3"]) await within(board.write(l), 30000, `${l} ACKed to the board`)
        await within(seen.wait("b3"), 30000, "b3 at the subscriber")
        await within(seen.wait("a2"), 20000, () => `a2 at the subscriber (got ${JSON.stringify(lines)})`)
        const r = seen.check(["a0", "a1", "a2", "b0", "b1", "b2", "b3"])
        assert.deepEqual({ lost: r.lost, publishedTwice: r.publishedTwice }, { lost: [], publishedTwice: [] })
    })

    // The same with an original (v1) board, which has no epoch: the next
    // gateway takes its first 00 on a socket as a restart, as its link does.
    it("board -> subscriber: a restarted v1 board's lines do not make the broker drop an ACKed line its dead gateway left unreleased", async function () {
        const { p1, p2, hold, g1, g2, lines, seen } = await heldPubrel(3, "bv1")
        const first = new V1Client({ id: "bv1", port: p1, timeout: 2000 }).start()
        onCleanup(() => first.close())
        await within(first.connected(), 20000, "v1 board up on gateway 1")
        for (const l of ["a0", "a1", "a2"]) await within(first.write(l), 30000, `${l} ACKed to the board`)
        await within(hold.held, 10000, "gateway 1's PUBREL for packet id 3 held back")
        g1.stop()
        await g1.exited
        await first.close()
        const board = new V1Client({ id: "bv1", port: p2, timeout: 2000 }).start() // a restart: ids from 00
        onCleanup(() => board.close())
        await within(board.connected(), 20000, "v1 board up on gateway 2")
        for (const l of ["b0", "b1", "b2", "b3"]) await within(board.write(l), 30000, `${l} ACKed to the board`)
        await within(seen.wait("b3"), 30000, "b3 at the subscriber")
        await within(seen.wait("a2"), 20000, () => `a2 at the subscriber (got ${JSON.stringify(lines)})`)
        await g2.waitFor(/new life/, 5000)
        const r = seen.check(["a0", "a1", "a2", "b0", "b1", "b2", "b3"])
        assert.deepEqual({ lost: r.lost, publishedTwice: r.publishedTwice }, { lost: [], publishedTwice: [] })
    })

    // The same life, resending: its first two lines (00, 01) are PUBREC'd,
    // not released, and their ACKs never reached the board when its gateway
    // died. The next gateway must not release packet id 2 before the board
    // resends 01, or the broker would take the resend as a new message.
    it("board -> subscriber: lines the broker holds PUBREC'd and the board resends after its gateway died reach the subscriber once", async function () {
        const { p1, p2, hold, g1, lines, seen } = await heldPubrel(1, "bs1")
        const freeze = new AckFreeze(p1)
        await freeze.listen()
        onCleanup(() => freeze.close())
        const board = cleanup(new Client({ id: "bs1", host: `127.0.0.1:${freeze.port},127.0.0.1:${p2}`, backoffFirst: 50, backoffCap: 300 }).start())
        await board.connected()
        await g1.waitFor(/link up.*bs1/, 10000)
        freeze.frozen = true
        const acked = [board.write("s0", { wait: false }), board.write("s1", { wait: false })]
        await within(hold.held, 10000, "gateway 1's PUBREL for packet id 1 held back")
        g1.stop() // SIGKILL: s0 and s1 stay PUBREC'd in the broker, the board has no ACK
        await g1.exited
        freeze.close() // refused from now on: the board moves to gateway 2
        await within(Promise.all(acked), 30000, "s0 and s1 ACKed to the board by gateway 2")
        await within(board.write("s2"), 30000, "s2 ACKed to the board")
        await within(seen.wait("s2"), 30000, () => `s2 at the subscriber (got ${JSON.stringify(lines)})`)
        const r = seen.check(["s0", "s1", "s2"])
        assert.deepEqual({ lost: r.lost, publishedTwice: r.publishedTwice }, { lost: [], publishedTwice: [] })
    })

    // A clean stop (SIGTERM, SIGINT: the same handler) leaves the retained
    // statuses right for whoever subscribes next: the gateway's and each
    // board's say offline.
    it("SIGTERM: exits 0; the gateway's retained status and its boards' say offline to a subscriber who comes later", async function () {
        const gw = gatewayProcess(broker.url, 0, "gstop")
        const port = await gatewayPort(gw)
        const watch = await mqttClient(broker.url, "test-watch-stop")
        const last = new Map<string, string>()
        watch.on("message", (t, p) => void last.set(t, p.toString()))
        const online = until(() => last.get("devs-iot/st1/status") === "online", 30000, "board online")
        await watch.subscribeAsync(["devs-iot/st1/status", "devs-iot/$gateway/gstop/status"], { qos: 1 })
        const board = cleanup(new Client({ id: "st1", port }).start())
        await board.connected()
        await online
        process.kill(gw.child.pid!, "SIGTERM")
        assert.equal(await within(gw.exited, 15000, "the gateway's exit after SIGTERM"), 0, gw.stderr)
        await board.close()
        await until(() => [...last.values()].join() === "offline,offline", 10000, `both statuses offline (got ${JSON.stringify([...last])})`)
        const later = await mqttClient(broker.url, "test-later-stop", true)
        const retained = new Map<string, string>()
        later.on("message", (t, p) => void retained.set(t, p.toString()))
        await later.subscribeAsync(["devs-iot/st1/status", "devs-iot/$gateway/gstop/status"], { qos: 1 })
        await until(() => retained.size === 2, 10000, `both retained statuses (got ${JSON.stringify([...retained])})`)
        assert.deepEqual(Object.fromEntries(retained), { "devs-iot/st1/status": "offline", "devs-iot/$gateway/gstop/status": "offline" })
    })

    // The broker resends the lines in flight at the kill to the next
    // gateway, which sends them with the message ids the board has.
    it("publisher -> board: each line once across 6 gateway SIGKILLs and restarts", async function () {
        await downRun(killOnly, "bd1", [40, 80, 120, 160, 200, 240])
    })

    // A line the board has, not yet ACKed (its application has not read it),
    // when its gateway dies: the broker resends it to the next gateway, which
    // continues the board's epoch and sends it with the same message id.
    it("publisher -> board: a line the board holds unread across a gateway SIGKILL reaches it once", async function () {
        // A long timeout lets the board keep a line unread (ackDelay <= timeout / 4).
        const slow = ["--timeout", "20000"]
        let gw = gatewayProcess(broker.url, 0, "g1", slow)
        const port = await gatewayPort(gw)
        const board = cleanup(new Client({ id: "bh1", port, backoffFirst: 50, backoffCap: 300, timeout: 20000, ackDelay: 5000 }).start())
        await board.connected()
        const pub = await mqttClient(broker.url, "test-pub-bh1")
        const online = within(new Promise<void>((r) => pub.on("message", (_t, p) => p.toString() === "online" && r())), 30000, "board online")
        await pub.subscribeAsync("devs-iot/bh1/status", { qos: 1 })
        await online
        for (const l of ["h0", "h1", "h2"]) await pub.publishAsync("devs-iot/bh1/down", l, { qos: 1 })
        await until(() => board.queued().in >= 1, 30000, "a line at the board, unread")
        gw.stop()
        await gw.exited
        const connects = board.connects
        gw = gatewayProcess(broker.url, port, "g1", slow)
        await until(() => board.connects > connects, 30000, "the board reconnected to the new gateway")
        await pub.publishAsync("devs-iot/bh1/down", "end", { qos: 1 })
        const got: string[] = []
        for await (const l of board) if (got.push(l) && l === "end") break
        assert.deepEqual(got, ["h0", "h1", "h2", "end"])
    })

    // The board's session lost: the broker numbers its packets from 1 again,
    // ids the board has seen in this epoch. The gateway restarts the link in
    // a new epoch; otherwise the next lines would be dropped as duplicates.
    it("publisher -> board: none lost when the broker restarts without the board's session", async function () {
        const gw = gatewayProcess(broker.url, 0, "g1")
        const port = await gatewayPort(gw)
        const board = cleanup(new Client({ id: "bl1", port, backoffFirst: 50, backoffCap: 300 }).start())
        await board.connected()
        const pub = await mqttClient(broker.url, "test-pub-bl1", true)
        let onOnline: () => void = () => undefined
        pub.on("message", (_t, p) => p.toString() === "online" && onOnline())
        const online = () => within(new Promise<void>((r) => (onOnline = r)), 30000, "board online")
        let up = online()
        await pub.subscribeAsync("devs-iot/bl1/status", { qos: 1 })
        await up
        const seen = new Seen()
        void (async () => {
            for await (const l of board) seen.add(l)
        })()
        for (let i = 0; i < 20; i++) await pub.publishAsync("devs-iot/bl1/down", "d" + i, { qos: 1 })
        await seen.until("d19", 30000)
        up = online()
        await broker.restartEmpty()
        await pub.subscribeAsync("devs-iot/bl1/status", { qos: 1 }) // a clean session: subscribe again
        await up
        await gw.waitFor(/link-restart/, 30000)
        for (let i = 20; i < 40; i++) await pub.publishAsync("devs-iot/bl1/down", "d" + i, { qos: 1 })
        await seen.until("d39", 30000)
        seen.check("d", 40)
    })

    // A QoS 0 message has no packet id, so no message id the next gateway could repeat.
    it("publisher -> board: a down line published at QoS 0 is refused with a reason, the next one passes", async function () {
        const gw = gatewayProcess(broker.url, 0, "g1")
        const port = await gatewayPort(gw)
        const board = cleanup(new Client({ id: "bq0", port }).start())
        await board.connected()
        const pub = await mqttClient(broker.url, "test-pub-bq0")
        const online = within(new Promise<void>((r) => pub.on("message", (_t, p) => p.toString() === "online" && r())), 30000, "board online")
        await pub.subscribeAsync("devs-iot/bq0/status", { qos: 1 })
        await online
        await pub.publishAsync("devs-iot/bq0/down", "at qos 0", { qos: 0 })
        await gw.waitFor(/bad-down.*published at QoS 0|published at QoS 0.*bad-down/, 15000)
        await pub.publishAsync("devs-iot/bq0/down", "at qos 1", { qos: 1 })
        assert.equal(await within(board.readline(), 15000, "a line at the board"), "at qos 1")
    })

    // The password has a ':' and an '@' (percent-escaped in the URL): MQTT.js
    // alone would split "user:pass" at its last ':'. A refused CONNECT is
    // retried: MQTT.js alone stops for good after one.
    it("a broker that refuses the gateway's credentials: retried until it accepts them, and the password is never logged", async function () {
        const password = "p:ss@w0rd"
        const locked = cleanup(new Mosquitto({ gw: "not-yet", app: "app-pass" }))
        await locked.start()
        const url = `mqtt://gw:${encodeURIComponent(password)}@127.0.0.1:${locked.port}`
        const gw = cli(["gateway", "--port", "0", "--host", "127.0.0.1", "--name", "g1", "--log-level", "debug"], { DEVS_IOT_MQTT: url })
        onCleanup(() => gw.stop())
        const port = await gatewayPort(gw)
        const board = cleanup(new Client({ id: "ba1", port }).start())
        await board.connected()
        const taken = board.write("after the refusal")
        await gw.waitFor(/not authori[sz]ed/i, 15000)
        const sub = mqttConnect(locked.url, { clientId: "test-sub-ba1", username: "app", password: "app-pass", reconnectPeriod: 100 })
        onCleanup(() => void sub.end(true))
        const line = new Promise<string>((r) => sub.on("message", (_t, p) => r(p.toString())))
        await within(sub.subscribeAsync("devs-iot/ba1/up", { qos: 2 }), 10000, "subscribed")
        locked.setUsers({ gw: password, app: "app-pass" })
        await within(taken, 30000, "the line ACKed to the board once the broker took it")
        assert.equal(await within(line, 10000, "the line at the subscriber"), "after the refusal")
        for (const secret of [password, encodeURIComponent(password)]) assert.ok(!gw.stderr.includes(secret), `the gateway's log holds the password (${secret})`)
        assert.match(gw.stderr, new RegExp(`mqtt://127\\.0\\.0\\.1:${locked.port}`))
    })

    // Mosquitto drops a connection whose topic holds a control character or
    // a non-character: the gateway's own, publishing the id's link record,
    // went down with it again after each reconnect.
    it("a board id with a character Mosquitto refuses in a topic is refused before its handshake; the gateway's broker connection stays up", async function () {
        const gw = gatewayProcess(broker.url, 0, "g1")
        const port = await gatewayPort(gw)
        const odd = new Client({ id: "odd\u007fid", port, backoffFirst: 50, backoffCap: 300 }).start()
        onCleanup(() => void odd.close())
        await gw.waitFor(/bad-id/, 15000)
        const sub = await mqttClient(broker.url, "test-sub-bg1")
        const line = new Promise<string>((r) => sub.on("message", (_t, p) => r(p.toString())))
        await sub.subscribeAsync("devs-iot/bg1/up", { qos: 2 })
        const board = cleanup(new Client({ id: "bg1", port }).start())
        await board.connected()
        await within(board.write("after the odd id"), 15000, "a line taken by the broker")
        assert.equal(await within(line, 15000, "the line at the subscriber"), "after the odd id")
        assert.doesNotMatch(gw.stderr, /broker connection lost/)
    })

    // A gateway, a board on it, and a publisher that saw the board online.
    async function downSetup(id: string, opts: Partial<ClientOptions> = {}, more: string[] = []) {
        const gw = gatewayProcess(broker.url, 0, "g1", more)
        const port = await gatewayPort(gw)
        const board = cleanup(new Client({ id, port, backoffFirst: 50, backoffCap: 300, ...opts }).start())
        await board.connected()
        const pub = await mqttClient(broker.url, "test-pub-" + id)
        const online = within(new Promise<void>((r) => pub.on("message", (_t, p) => p.toString() === "online" && r())), 30000, "board online")
        await pub.subscribeAsync(`devs-iot/${id}/status`, { qos: 1 })
        await online
        return { gw, board, pub, port }
    }

    // The broker sends a retained message again on each SUBSCRIBE, which the
    // board's session makes each time it comes back: a copy, not a new line.
    it("publisher -> board: a retained down line reaches the board once, not again after a gateway restart", async function () {
        const { gw, board, pub, port } = await downSetup("br9")
        await pub.publishAsync("devs-iot/br9/down", "retained", { qos: 1, retain: true })
        onCleanup(() => void pub.publish("devs-iot/br9/down", "", { qos: 1, retain: true }))
        const got: string[] = []
        const end = (async () => {
            for await (const l of board) if (got.push(l) && l === "end") break
        })()
        await until(() => got.length === 1, 15000, "the retained line at the board")
        gw.stop()
        await gw.exited
        const connects = board.connects
        const next = gatewayProcess(broker.url, port, "g1")
        await until(() => board.connects > connects, 30000, "the board reconnected to the new gateway")
        await next.waitFor(/bad-down.*a retained message|a retained message.*bad-down/, 15000)
        await pub.publishAsync("devs-iot/br9/down", "end", { qos: 1 })
        await within(end, 15000, "end at the board")
        assert.deepEqual(got, ["retained", "end"])
    })

    // Each refused message takes a packet id, so the next line's message id
    // skips ahead; past what the board's de-duplication set covers, the
    // link restarts in a new epoch rather than have the board drop it.
    it("publisher -> board: a line after 150 refused down messages arrives once", async function () {
        const { gw, board, pub } = await downSetup("bk1")
        const seen = new Seen()
        void (async () => {
            for await (const l of board) seen.add(l)
        })()
        for (let i = 0; i < 260; i++) await pub.publishAsync("devs-iot/bk1/down", "d" + i, { qos: 1 })
        await seen.until("d259", 30000)
        for (let i = 0; i < 150; i++) await pub.publishAsync("devs-iot/bk1/down", "", { qos: 1 })
        await pub.publishAsync("devs-iot/bk1/down", "d260", { qos: 1 })
        await seen.until("d260", 30000)
        await gw.waitFor(/link-restart/, 5000)
        seen.check("d", 261)
    })

    // A refused message between lines in flight: the line after the gap
    // waits for those (its id skips), and the next one must not pass it.
    it("publisher -> board: lines around a refused one arrive in order while earlier ones are un-ACKed", async function () {
        const { board, pub } = await downSetup("bo1", { timeout: 20000, ackDelay: 1000 }, ["--timeout", "20000"])
        for (const l of ["L0", "L1", "", "L3", "L4", "L5"]) await pub.publishAsync("devs-iot/bo1/down", l, { qos: 1 })
        await until(() => board.queued().in >= 2, 30000, "L0 and L1 at the board, unread")
        const got: string[] = []
        for await (const l of board) if (got.push(l) && l === "L5") break
        assert.deepEqual(got, ["L0", "L1", "L3", "L4", "L5"])
    })

    // 256 lines of 30 KB are more than the link's write queue holds (4 MiB):
    // the gateway reads on from the broker only as the board takes them.
    it("publisher -> board: lines of 30 KB to a board that reads late, more bytes than the link queues, all arrive in order", async function () {
        const { gw, board, pub } = await downSetup("bb1")
        const n = 256
        for (let i = 0; i < n; i++) pub.publish("devs-iot/bb1/down", String(i).padStart(4, "0") + "x".repeat(30000), { qos: 1 })
        // The board's receive queue full (1 MiB): the rest wait in the gateway and the broker.
        await until(() => board.queued().in >= 32, 30000, "lines waiting at the board")
        const got: string[] = []
        const all = (async () => {
            for await (const l of board) if (got.push(l.slice(0, 4)) && got.length === n) break
        })()
        await within(all, 60000, () => `all ${n} lines at the board (got ${got.length})`).catch((e) => {
            throw new Error(`${(e as Error).message}; got ${got.length}, gateway: ${gw.stderr.match(/.*(queue full|refused).*/)?.[0] ?? "no refusal logged"}`)
        })
        assert.deepEqual(got, Array.from({ length: n }, (_, i) => String(i).padStart(4, "0")))
        assert.doesNotMatch(gw.stderr, /queue full|not taken|refused/)
    })

    it("board -> subscriber: each line once across a broker restart", async function () {
        await upRun(restartOnly, "bu2")
    })

    it("publisher -> board: each line once across a broker restart", async function () {
        await downRun(restartOnly, "bd2")
    })

    // An id the server evicts for room (maxClients) takes its link record,
    // retained status and broker session with it: else every id that ever
    // came stays in every gateway and in the broker (checked failing before).
    it("ids evicted for room (maxClients 2, 5 ids) leave 2 link records, in the broker and the gateway's maps, and no session", async function () {
        const gw = new Gateway({ port: 0, host: "127.0.0.1", mqtt: broker.url, name: "gev", limits: { maxClients: 2, newIdRate: 1000, newIdBurst: 1000 } })
        onCleanup(() => gw.close())
        await gw.start()
        const held = await watchTopics(broker.url, ["devs-iot/$link/+", "devs-iot/+/status"], "gev")
        const ids = ["ev0", "ev1", "ev2", "ev3", "ev4"]
        for (const id of ids) {
            const gone = new Promise<void>((r) => {
                const f = (c: { id: string }) => c.id === id && (gw.server.off("disconnect", f), r())
                gw.server.on("disconnect", f)
            })
            const c = cleanup(new Client({ id, port: gw.port }).start())
            await within(c.connected(), 10000, `${id} up`)
            await c.write("hello from " + id)
            await c.close()
            await within(gone, 10000, `${id} down`)
        }
        const kept = ["ev3", "ev4"]
        await until(() => [...gw.epochs.keys()].sort().join() === kept.join(), 10000, `the gateway's down epochs of ${kept} alone (got ${[...gw.epochs.keys()]})`)
        // The maps go first; the clearing publishes reach the broker after.
        const linked = () => held(2, "devs-iot/$link/")
        const statused = () => held(1, "devs-iot/").filter((id) => id !== "$link")
        await until(() => linked().join() === kept.join() && statused().join() === kept.join(), 10000, `link records and statuses of ${kept} alone (got ${linked()}; ${statused()})`)
        const retained = async (filter: string, level: number) => [...(await retainedNow(broker.url, filter)).keys()].map((t) => t.split("/")[level]!).sort()
        assert.deepEqual({ links: await retained("devs-iot/$link/+", 2), statuses: await retained("devs-iot/+/status", 1) }, { links: kept, statuses: kept })
        assert.deepEqual([...gw.boardEpochs.keys()].sort(), kept)
        assert.deepEqual(await sessionKept(broker.url, "devs-iot-ev0"), false, "ev0's broker session ended")
        assert.deepEqual(await sessionKept(broker.url, "devs-iot-ev4"), true, "ev4's broker session kept")
    })

    it("a board taken over by another gateway is not evicted by the one it left: its link record and session stay", async function () {
        const limits = { maxClients: 2, newIdRate: 1000, newIdBurst: 1000 }
        const g1 = new Gateway({ port: 0, host: "127.0.0.1", mqtt: broker.url, name: "gtk1", limits })
        const g2 = new Gateway({ port: 0, host: "127.0.0.1", mqtt: broker.url, name: "gtk2", limits })
        onCleanup(() => g1.close())
        onCleanup(() => g2.close())
        await Promise.all([g1.start(), g2.start()])
        const visit = async (gw: Gateway, id: string, stay = false) => {
            const c = cleanup(new Client({ id, port: gw.port }).start())
            await within(c.connected(), 10000, `${id} up`)
            await c.write("hello from " + id)
            if (!stay) await c.close()
            return c
        }
        const held = await watchTopics(broker.url, ["devs-iot/$link/+"], "gtk")
        await visit(g1, "tk")
        const letGo = new Promise<void>((r) => g1.server.on("forget", (c) => c.id === "tk" && r()))
        const board = await visit(g2, "tk", true)
        await within(letGo, 10000, "gateway 1 lets go of tk")
        const evicted: string[] = []
        g1.server.on("warning", (w) => w.code === "id-evicted" && evicted.push(w.id ?? ""))
        for (const id of ["tc0", "tc1", "tc2", "tc3"]) await visit(g1, id)
        await until(() => evicted.length === 2, 10000, `2 ids evicted by gateway 1 (got ${evicted})`)
        await until(() => !g1.epochs.has("tc0") && !g1.epochs.has("tc1"), 10000, "gateway 1 drops tc0 and tc1")
        // The maps go first; the clearing publishes reach the broker after.
        await until(() => held(2, "devs-iot/$link/").join() === "tc2,tc3,tk", 10000, `link records of tc2, tc3, tk alone (got ${held(2, "devs-iot/$link/")})`)
        const links = await retainedNow(broker.url, "devs-iot/$link/+")
        assert.deepEqual([...links.keys()].map((t) => t.split("/")[2]).sort(), ["tc2", "tc3", "tk"])
        assert.equal(g1.epochs.get("tk"), g2.epochs.get("tk"))
        await board.write("still through gateway 2")
        assert.equal(g2.server.connection("tk")?.status(), true)
    })

    // A took notice missed (this gateway was away from the broker) leaves an
    // idle id here that another gateway holds: its status says online.
    it("an evicted id whose retained status says online keeps its link record and session", async function () {
        const lines: string[] = []
        const logger = pino({ level: "info" }, { write: (l: string) => void lines.push(l) })
        const gw = new Gateway({ port: 0, host: "127.0.0.1", mqtt: broker.url, name: "gon", logger, limits: { maxClients: 1, newIdRate: 1000, newIdBurst: 1000 } })
        onCleanup(() => gw.close())
        await gw.start()
        const offline = new Promise<void>((r) => gw.server.on("disconnect", (c) => c.id === "on0" && r()))
        const c0 = cleanup(new Client({ id: "on0", port: gw.port }).start())
        await within(c0.connected(), 10000, "on0 up")
        await c0.close()
        await within(offline, 10000, "on0 down")
        const pub = await mqttClient(broker.url, "test-on-pub", true)
        // The session's will ("offline") first, then another gateway's "online" (here, the test's).
        const status = new Promise<void>((r) => pub.on("message", (t, p) => p.toString() === "offline" && r()))
        await pub.subscribeAsync("devs-iot/on0/status", { qos: 1 })
        await within(status, 10000, "on0 offline")
        await pub.publishAsync("devs-iot/on0/status", "online", { qos: 1, retain: true })
        onCleanup(() => void pub.publish("devs-iot/on0/status", "", { qos: 1, retain: true }))
        const c1 = cleanup(new Client({ id: "on1", port: gw.port }).start())
        await within(c1.connected(), 10000, "on1 up")
        await until(() => lines.some((l) => /online through another gateway/.test(l)), 10000, "the eviction of on0 left alone")
        assert.ok((await retainedNow(broker.url, "devs-iot/$link/on0")).has("devs-iot/$link/on0"), "on0's link record kept")
        assert.ok(gw.epochs.has("on0"), "on0's entry kept")
        await c1.close()
    })
})
