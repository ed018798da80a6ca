// Up lines across one cut of the gateway's broker connection, with 64 in
// flight each way: once the connection is back (and stays up), up lines
// flow again beside the down lines. Before, MQTT.js resent the up lines in
// its store one QoS 2 exchange at a time between CONNACK and 'connect'
// (each waiting for its PUBCOMP, on a connection busy with down lines),
// and new up lines waited for 'connect'. Now the gateway resends them
// itself, in one write on CONNACK. With down lines paced to 256 ahead of
// the board (2026-12-05): old code 28-112 up lines at the subscriber while
// 4,000 down lines reached the board after the cut (4 runs), new code
// 979-1,385 (11 runs, 6 beside two busy loops).
import assert from "node:assert/strict"
import { pino } from "pino"
import { Client } from "../../src/server/index.js"
import { Gateway } from "../../src/server/gateway.js"
import { cleanup, closeAll, onCleanup, until, within } from "../kit/util.js"
import { Deliveries } from "../kit/deliveries.js"
import { boardOnline, brokerBehindProxy, mqttClient } from "../kit/mqtt.js"

describe("MQTT gateway: up lines after a cut", function () {
    this.timeout(120000)
    afterEach(closeAll)

    it("after one cut with 64 lines in flight each way, up lines flow again on the new connection, each once and in order", async function () {
        const { broker, proxy } = await brokerBehindProxy()
        const logger = pino({ level: process.env["CUT_LOG"] ?? "silent" })
        const gw = cleanup(new Gateway({ mqtt: `mqtt://127.0.0.1:${proxy.port}`, port: 0, host: "127.0.0.1", name: "grep", logger, mqttBackoffFirst: 20, mqttBackoffCap: 100 }))
        await gw.start()
        const id = "rep0"
        const sub = await mqttClient(broker.url, `test-sub-${id}`)
        const up = new Deliveries()
        const upOrder: number[] = []
        let upCount = 0
        let cutDone = false
        let upAfterCut = 0
        let sawBefore!: () => void
        const enoughBefore = new Promise<void>((r) => (sawBefore = r))
        sub.on("message", (_t, p, packet) => {
            const s = p.toString()
            if (!up.has(s)) {
                upOrder.push(Number(s.slice(1)))
                if (++upCount === 300) sawBefore()
                if (cutDone) upAfterCut++
            }
            up.add(s, packet)
        })
        await sub.subscribeAsync(`devs-iot/${id}/up`, { qos: 2 })
        const pub = await mqttClient(broker.url, `test-pub-${id}`)
        const board = await boardOnline(pub, id, gw.port, 64)
        let stop = false
        // Down lines are published at most DOWN_AHEAD ahead of the board:
        // the broker then holds a bounded backlog for the session, and the
        // PUBRECs of the resent up lines come behind at most that many down
        // lines. Unpaced, it queued thousands during the cut under load,
        // and up lines of any gateway waited for all of them.
        const DOWN_AHEAD = 256
        let downGot = 0
        const waiting: Array<() => void> = []
        const wakeAll = () => {
            for (const w of waiting.splice(0)) w()
        }
        onCleanup(() => {
            stop = true
            wakeAll()
        })
        // Up lines at the subscriber by each 500 down lines at the board,
        // before the cut and after it.
        const STEP = 500
        const before: number[] = []
        const after: number[] = []
        let downBefore = 0
        let downAfter = 0
        let sawAfter!: () => void
        const enoughAfter = new Promise<void>((r) => (sawAfter = r))
        void (async () => {
            for await (const _ of board) {
                void _
                downGot++
                wakeAll()
                if (!cutDone) {
                    if (++downBefore % STEP === 0 && before.length < 8) before.push(upCount)
                } else if (++downAfter % STEP === 0 && after.length < 8) {
                    after.push(upAfterCut)
                    if (after.length === 8) sawAfter()
                }
            }
        })()
        // Both ways busy until the test ends.
        const lanes = (make: (i: number) => Promise<unknown>) => {
            let next = 0
            return Promise.all(
                Array.from({ length: 64 }, async () => {
                    while (!stop) await make(next++).catch(() => undefined)
                }),
            )
        }
        void lanes((i) => board.write("u" + i, { wait: false }))
        void lanes(async (i) => {
            while (!stop && i - downGot > DOWN_AHEAD) await new Promise<void>((r) => waiting.push(r))
            if (!stop) await pub.publishAsync(`devs-iot/${id}/down`, "d" + i, { qos: 1 })
        })
        await within(enoughBefore, 30000, "300 up lines before the cut")
        proxy.cut("fin")
        cutDone = true
        // The connection comes back and stays up.
        await within(enoughAfter, 60000, () => `${8 * STEP} down lines at the board after the cut (got ${downAfter})`)
        stop = true // the lanes end, the last writes failing when the board closes (cleanup)
        wakeAll()
        const bad = upOrder.filter((v, i) => i > 0 && v < upOrder[i - 1]!).length
        const r = up.check(upOrder.map((i) => "u" + i))
        console.log(`      up lines at the subscriber by each ${STEP} down lines at the board: ${before} before the cut, ${after} after it; out of order ${bad}; gateway counts ${JSON.stringify(gw.counts)}`)
        assert.ok(after[7]! >= 192, `at least 192 up lines at the subscriber while ${8 * STEP} down lines reached the board after the cut: ${after}`)
        assert.equal(r.publishedTwice.length, 0, "each up line published once")
        assert.equal(bad, 0, "up lines in order")
    })
    // The new life's lines reuse the packet ids of the old one's still in
    // flight (link ids from 00 again): one whose id is taken waits for it,
    // and the lines after it must wait too.
    it("a board restarted while its lines wait for the broker: its new life's lines reach the subscriber in order", async function () {
        const { broker, proxy } = await brokerBehindProxy()
        const gw = cleanup(new Gateway({ mqtt: `mqtt://127.0.0.1:${proxy.port}`, port: 0, host: "127.0.0.1", name: "grestart", mqttBackoffFirst: 20, mqttBackoffCap: 100 }))
        await gw.start()
        const id = "life0"
        const sub = await mqttClient(broker.url, `test-sub-${id}`)
        const got: string[] = []
        sub.on("message", (_t, p) => got.push(p.toString()))
        await sub.subscribeAsync(`devs-iot/${id}/up`, { qos: 2 })
        const first = new Client({ id, port: gw.port, backoffFirst: 20, backoffCap: 100, window: 64 }).start()
        onCleanup(() => first.close())
        await first.connected()
        await within(first.write("w"), 20000, "w ACKed")
        // The broker stops answering: a0..a9 (packet ids 2..11) stay in flight.
        proxy.stall(true)
        for (let i = 0; i < 10; i++) void first.write("a" + i, { wait: false }).catch(() => undefined)
        await until(() => gw.counts.upHeld >= 11, 20000, "a0..a9 held by the gateway")
        await first.close()
        // A new life: link ids from 00, so b1..b10 have the packet ids of a0..a9.
        const board = cleanup(new Client({ id, port: gw.port, backoffFirst: 20, backoffCap: 100, window: 64 }).start())
        await board.connected()
        const acked = Array.from({ length: 20 }, (_, i) => board.write("b" + i, { wait: false }))
        await until(() => gw.counts.upHeld >= 31, 20000, "b0..b19 held by the gateway")
        proxy.stall(false)
        await within(Promise.all(acked), 30000, "b0..b19 ACKed to the board")
        await until(() => got.includes("b19") && got.filter((l) => l.startsWith("b")).length >= 20, 30000, "b0..b19 at the subscriber")
        const b = got.filter((l) => l.startsWith("b"))
        assert.deepEqual(b, Array.from({ length: 20 }, (_, i) => "b" + i), "the new life's lines once and in order")
    })
})
