// A down line's resend from Mosquitto long after the line was handed on:
// the gateway's PUBACK of it was lost, more lines than the gateway keeps
// records of (2,048) came after it, and then the connection was cut, so
// the broker sends it again with a packet id far behind the last one
// written. Before, that id looked 63,000 ids ahead: the board's link
// restarted in a new epoch and the broker's resends reached the board
// twice (seen in the cuts test beside busy loops). And what a session
// keeps of the down packet ids across a refused CONNECT (all of it) and
// across a session the broker lost (none of it).
import assert from "node:assert/strict"
import { connect, createServer, type Server, type Socket } from "node:net"
import { connect as mqttConnect } from "mqtt"
import { pino } from "pino"
import { Gateway } from "../../src/server/gateway.js"
import { cleanup, closeAll, onCleanup, until, within } from "../kit/util.js"
import { Mosquitto } from "../kit/mosquitto.js"
import { FaultProxy } from "../kit/proxy.js"
import { V1Client } from "../kit/v1peer.js"
import { boardOnline, mqttClient, pipeline } from "../kit/mqtt.js"

// Where the MQTT packet at the start of `b` ends; -1: not all of it yet.
function packetEnd(b: Buffer): number {
    let len = 0
    for (let i = 1; i <= 4; i++) {
        if (i >= b.length) return -1
        len += (b[i]! & 127) * 128 ** (i - 1)
        if ((b[i]! & 128) === 0) return i + 1 + len <= b.length ? i + 1 + len : -1
    }
    throw new Error("bad MQTT remaining length")
}

// A TCP proxy between MQTT clients and a broker that can drop the next
// PUBACK the client with id `clientId` sends, and cut every connection.
class PubackDropper {
    port = 0
    private net: Server
    private pairs = new Set<[Socket, Socket]>()
    private dropNext: ((pid: number) => void) | undefined
    private refuseNext: (() => void) | undefined

    constructor(
        private target: number,
        private clientId: string,
    ) {
        this.net = createServer((c) => this.accept(c))
    }

    async listen(): Promise<void> {
        await new Promise<void>((r) => this.net.listen(0, "127.0.0.1", r))
        const a = this.net.address()
        this.port = typeof a === "object" && a ? a.port : 0
    }

    // Resolves with the packet id of the PUBACK dropped.
    dropNextPuback(): Promise<number> {
        return new Promise((r) => (this.dropNext = r))
    }

    // Answers the next CONNECT of client `clientId` itself: a CONNACK
    // refusing it (3, server unavailable), which says no session (MQTT
    // 3.1.1: session present is 0 with any refusal); resolves then.
    refuseNextConnect(): Promise<void> {
        return new Promise((r) => (this.refuseNext = r))
    }

    cut(): void {
        for (const [a, b] of this.pairs) (a.destroy(), b.destroy())
        this.pairs.clear()
    }

    async close(): Promise<void> {
        this.cut()
        await new Promise<void>((r) => this.net.close(() => r()))
    }

    private accept(client: Socket): void {
        const server = connect({ port: this.target, host: "127.0.0.1" })
        const pair: [Socket, Socket] = [client, server]
        this.pairs.add(pair)
        client.on("error", () => undefined)
        server.on("error", () => undefined)
        server.on("data", (b: Buffer) => client.write(b))
        let held = Buffer.alloc(0)
        let ours = false
        client.on("data", (b: Buffer) => {
            held = Buffer.concat([held, b])
            const out: Buffer[] = []
            for (let end = packetEnd(held); end > 0; end = packetEnd(held)) {
                const p = held.subarray(0, end)
                held = held.subarray(end)
                if (p[0] === 0x10) ours = p.includes(this.clientId)
                const refuse = this.refuseNext
                if (p[0] === 0x10 && ours && refuse) {
                    this.refuseNext = undefined
                    client.end(Buffer.from([0x20, 2, 0, 3]))
                    refuse()
                    return
                }
                const drop = this.dropNext
                if (p[0] === 0x40 && ours && drop) {
                    this.dropNext = undefined
                    drop(p.readUInt16BE(2))
                    continue
                }
                out.push(p)
            }
            if (out.length > 0) server.write(Buffer.concat(out))
        })
        const gone = () => {
            this.pairs.delete(pair)
            client.destroy()
            server.destroy()
        }
        client.on("close", gone)
        server.on("close", gone)
    }
}

describe("MQTT gateway: a down line resent far behind the last one written", function () {
    this.timeout(120000)
    afterEach(closeAll)

    it("its PUBACK lost and 2,100 lines since: answered, not written again; the board gets each line once and its link does not restart", async function () {
        await behind(false)
    })

    it("... also when a CONNECT was refused before the session came back (a refusal says no session: the ids handled stay known)", async function () {
        await behind(true)
    })

    // A v1 board's down lines go with the link's own ids, so its link does
    // not restart when the broker loses the session: the new session numbers
    // its packets from 1 again, under ids of lines passed on before.
    it("after the broker lost the session, a new line under the packet id of one the v1 board got meanwhile is written, not taken for its resend", async function () {
        const broker = cleanup(new Mosquitto())
        await broker.start()
        const id = "lost0"
        const logs: string[] = []
        const logger = pino({ level: "debug" }, { write: (l: string) => void logs.push(l) })
        const gw = cleanup(new Gateway({ mqtt: broker.url, port: 0, host: "127.0.0.1", name: "glost", logger, mqttBackoffFirst: 20, mqttBackoffCap: 100 }))
        await gw.start()
        const proxy = new FaultProxy(gw.port)
        await proxy.listen()
        onCleanup(() => proxy.close())
        const topic = `devs-iot/${id}/down`
        const pub = await mqttClient(broker.url, `test-pub-${id}`)
        let onlines = 0
        pub.on("message", (t, p) => t.endsWith("/status") && p.toString() === "online" && onlines++)
        await pub.subscribeAsync(`devs-iot/${id}/status`, { qos: 1 })
        const board = new V1Client({ id, port: proxy.port, timeout: 2000 }).start()
        onCleanup(() => board.close())
        await within(board.connected(), 20000, "v1 board up")
        await until(() => onlines >= 1, 20000, "board online")
        const got: string[] = []
        void (async () => {
            for await (const l of board) got.push(l)
        })()
        // x (packet id 1) is written to the link and stays there: the board's socket is stalled.
        proxy.stall(true)
        await pub.publishAsync(topic, "x", { qos: 1 })
        await until(() => logs.some((l) => l.includes("down line from the broker")), 20000, "x at the gateway")
        // A clean session under the board's client id ends the one the broker kept.
        const wipe = mqttConnect(broker.url, { clientId: `devs-iot-${id}`, clean: true, reconnectPeriod: 0 })
        onCleanup(() => void wipe.end(true))
        await within(new Promise<void>((r) => wipe.once("connect", () => r())), 10000, "the session wiped")
        await wipe.endAsync()
        await until(() => logs.some((l) => l.includes("session-lost")) && onlines >= 2, 20000, "the gateway back on a new session, subscribed")
        // x reaches the board now; its PUBACK would go on a connection that is gone: none.
        proxy.stall(false)
        await until(() => got.includes("x") && gw.counts.downDone >= 1, 20000, "x at the board")
        await pub.publishAsync(topic, "x", { qos: 1 }) // packet id 1 of the new session
        await pub.publishAsync(topic, "y", { qos: 1 })
        await until(() => got.includes("y"), 20000, "y at the board")
        assert.deepEqual(got, ["x", "x", "y"], "the second x written to the board")
    })
})

// d0's PUBACK dropped, 2,100 lines, a cut (and a refused CONNECT first, if
// `refuse`), then d0's resend: each line once at the board, no link restart.
async function behind(refuse: boolean): Promise<void> {
    const broker = cleanup(new Mosquitto())
    await broker.start()
    const id = "behind0"
    const proxy = new PubackDropper(broker.port, `devs-iot-${id}`)
    await proxy.listen()
    onCleanup(() => proxy.close())
    const logs: string[] = []
    const logger = pino({ level: "info" }, { write: (l: string) => void logs.push(l) })
    const gw = cleanup(new Gateway({ mqtt: `mqtt://127.0.0.1:${proxy.port}`, port: 0, host: "127.0.0.1", name: "gbehind", logger, mqttBackoffFirst: 20, mqttBackoffCap: 100 }))
    await gw.start()
    const topic = `devs-iot/${id}/down`
    const pub = await mqttClient(broker.url, `test-pub-${id}`)
    const board = await boardOnline(pub, id, gw.port)
    const got = new Map<string, number>()
    void (async () => {
        for await (const l of board) got.set(l, (got.get(l) ?? 0) + 1)
    })()
    const dropped = proxy.dropNextPuback()
    await pub.publishAsync(topic, "d0", { qos: 1 })
    await within(dropped, 10000, "the PUBACK of d0 dropped")
    const N = 2100
    await pipeline(N, 64, (i) => pub.publishAsync(topic, "d" + (i + 1), { qos: 1 }))
    await until(() => got.has("d" + N), 60000, `d${N} at the board`)
    // The broker sends d0 again first on the next connection.
    const refused = refuse ? proxy.refuseNextConnect() : Promise.resolve()
    proxy.cut()
    await within(refused, 10000, "a CONNECT refused")
    await pub.publishAsync(topic, "dend", { qos: 1 })
    await until(() => got.has("dend"), 60000, "dend at the board")
    const twice = [...got].filter(([, n]) => n > 1).map(([l]) => l)
    const lost = Array.from({ length: N + 1 }, (_, i) => "d" + i).filter((l) => !got.has(l))
    assert.deepEqual({ twice: twice.slice(0, 5), lost: lost.slice(0, 5) }, { twice: [], lost: [] }, "each line once at the board")
    const restarts = logs.filter((l) => (JSON.parse(l) as { code?: string }).code === "link-restart")
    assert.deepEqual(restarts, [], "the board's link did not restart")
    assert.ok(gw.counts.downResends >= 1, `d0's resend answered (gateway counts ${JSON.stringify(gw.counts)})`)
}

