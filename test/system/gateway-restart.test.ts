// A board's link restarted by its gateway (a new epoch for its down lines)
// while its up lines are in flight: each up line once at a plain MQTT
// subscriber, each down line once at the board. The restart is forced the
// way the gateway makes one: down messages it refuses (empty) take packet
// ids, and at 100 past the last line written the next line's id would
// leave the board's de-duplication window. The board's up ids go on
// across a restart (only its down lines get a new epoch). Before the
// gateway ended the board's MQTT connection with a FIN at a restart, 2 to
// 4 down lines in each run reached the board twice: their PUBACKs were
// lost with the destroyed connection, and the broker sent them again in
// the new epoch.
import assert from "node:assert/strict"
import { pino } from "pino"
import { Client } from "../../src/server/index.js"
import { Gateway } from "../../src/server/gateway.js"
import { cleanup, closeAll, onCleanup, until, within } from "../kit/util.js"
import { Mosquitto } from "../kit/mosquitto.js"
import { Deliveries } from "../kit/deliveries.js"
import { FaultProxy } from "../kit/proxy.js"
import { boardOnline, mqttClient, pipeline } from "../kit/mqtt.js"

describe("MQTT gateway: a board's link restarted while its up lines are in flight", function () {
    this.timeout(180000)
    afterEach(closeAll)

    it("64 up lines in flight, the link restarted 6 times: each up line once at the subscriber, each down line once at the board", async function () {
        const broker = cleanup(new Mosquitto())
        await broker.start()
        const logs: string[] = []
        const logger = pino({ level: "info" }, { write: (l: string) => void logs.push(l) })
        const restarts = () => logs.filter((l) => l.includes('"link-restart"')).length
        const gw = cleanup(new Gateway({ mqtt: broker.url, port: 0, host: "127.0.0.1", name: "grs", logger }))
        await gw.start()
        const id = "rs0"
        const sub = await mqttClient(broker.url, `test-sub-${id}`)
        const up = new Deliveries()
        sub.on("message", (_t, p, packet) => up.add(p.toString(), packet))
        await sub.subscribeAsync(`devs-iot/${id}/up`, { qos: 2 })
        const pub = await mqttClient(broker.url, `test-pub-${id}`)
        const board = await boardOnline(pub, id, gw.port, 64)
        const down = new Map<string, number>()
        void (async () => {
            for await (const l of board) down.set(l, (down.get(l) ?? 0) + 1)
        })()
        const N = 3000
        const RESTARTS = 6
        let written = 0
        const upLines = within(
            pipeline(N, 64, (i) => board.write("u" + i, { wait: false }).then(() => written++)),
            120000,
            () => `up lines ACKed to the board (${written} of ${N})`,
        )
        // A down line, then 120 refused messages and one more line: a restart.
        for (let r = 0; r < RESTARTS; r++) {
            await until(() => written >= ((r + 1) * N) / (RESTARTS + 2), 60000, `${((r + 1) * N) / (RESTARTS + 2)} up lines ACKed`)
            await pub.publishAsync(`devs-iot/${id}/down`, `d${2 * r}`, { qos: 1 })
            for (let i = 0; i < 120; i++) pub.publish(`devs-iot/${id}/down`, "", { qos: 1 })
            await pub.publishAsync(`devs-iot/${id}/down`, `d${2 * r + 1}`, { qos: 1 })
            await until(() => restarts() > r, 30000, `link restart ${r + 1}`)
        }
        await upLines
        await board.write("uend")
        await pub.publishAsync(`devs-iot/${id}/down`, "dend", { qos: 1 })
        await within(up.wait("uend"), 30000, "uend at the subscriber")
        await within(Promise.all(Array.from({ length: N }, (_, i) => up.wait("u" + i))), 10000, "every up line at the subscriber").catch(() => undefined)
        await until(() => down.has("dend"), 30000, "dend at the board")
        const r = up.check(Array.from({ length: N }, (_, i) => "u" + i))
        const short = (l: string[]) => (l.length > 6 ? [...l.slice(0, 3), `... ${l.length} in all`] : l)
        const twiceDown = [...down].filter(([, n]) => n > 1).map(([l]) => l)
        const lostDown = Array.from({ length: 2 * RESTARTS }, (_, i) => "d" + i).filter((l) => !down.has(l))
        // Mosquitto logs a line it dropped for a reused packet id (up lines lost).
        const reused = broker.log.split("\n").filter((l) => l.includes("Reused message ID"))
        console.log(`      up lost ${r.lost.length}, published twice ${r.publishedTwice.length}; down lost ${lostDown.length}, twice ${twiceDown.length}; restarts ${restarts()}, unconfirmed ${logs.filter((l) => l.includes("link-restart-unconfirmed")).length}, reused packet ids ${reused.length}`)
        if (r.lost.length > 0) console.log(`      lost ${r.lost.join(" ")}\n${reused.slice(0, 10).join("\n")}`)
        assert.ok(restarts() >= RESTARTS, "each restart made")
        assert.deepEqual({ lost: short(r.lost), publishedTwice: short(r.publishedTwice) }, { lost: [], publishedTwice: [] }, "up: each line published once, none lost")
        assert.deepEqual({ lost: lostDown, twice: twiceDown }, { lost: [], twice: [] }, "down: each line once at the board")
    })
    // The restart waits for d0's ACK from the board, and the broker
    // connection is cut meanwhile: d0's PUBACK can no longer go on the
    // connection d0 came on, and the broker sends d0 again on the next.
    it("a restart pending across a cut of the broker connection: the line the board ACKed meanwhile reaches it once", async function () {
        const broker = cleanup(new Mosquitto())
        await broker.start()
        const toBroker = new FaultProxy(broker.port)
        await toBroker.listen()
        onCleanup(() => toBroker.close())
        const logs: string[] = []
        const logger = pino({ level: "info" }, { write: (l: string) => void logs.push(l) })
        const restarts = () => logs.filter((l) => l.includes('"link-restart"')).length
        const gw = cleanup(new Gateway({ mqtt: `mqtt://127.0.0.1:${toBroker.port}`, port: 0, host: "127.0.0.1", name: "grc", logger, mqttBackoffFirst: 20, mqttBackoffCap: 100 }))
        await gw.start()
        const toGw = new FaultProxy(gw.port)
        await toGw.listen()
        onCleanup(() => toGw.close())
        const id = "rc0"
        const pub = await mqttClient(broker.url, `test-pub-${id}`)
        let onlines = 0
        pub.on("message", (t, p) => t.endsWith("/status") && p.toString() === "online" && onlines++)
        await pub.subscribeAsync(`devs-iot/${id}/status`, { qos: 1 })
        const board = cleanup(new Client({ id, port: toGw.port, backoffFirst: 20, backoffCap: 100 }).start())
        await board.connected()
        await until(() => onlines >= 1, 30000, "board online")
        const down = new Map<string, number>()
        void (async () => {
            for await (const l of board) down.set(l, (down.get(l) ?? 0) + 1)
        })()
        // d0 waits in the link (the board's socket stalled); 120 refused messages make a restart pending.
        toGw.stall(true)
        await pub.publishAsync(`devs-iot/${id}/down`, "d0", { qos: 1 })
        for (let i = 0; i < 120; i++) pub.publish(`devs-iot/${id}/down`, "", { qos: 1 })
        await until(() => gw.counts.downRefused >= 99, 30000, "99 refused")
        const session = (gw as unknown as { sessions: Map<string, { restartWhy?: string }> }).sessions.get(id)!
        await until(() => session.restartWhy !== undefined, 30000, "a restart pending")
        toBroker.cut("fin")
        await until(() => onlines >= 2, 30000, "the board's MQTT session back")
        toGw.stall(false)
        await until(() => restarts() >= 1, 30000, "the link restarted")
        await pub.publishAsync(`devs-iot/${id}/down`, "dend", { qos: 1 })
        await until(() => down.has("dend"), 30000, "dend at the board")
        assert.deepEqual(Object.fromEntries(down), { d0: 1, dend: 1 }, "each down line once at the board")
    })
})
