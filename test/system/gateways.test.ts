// Several MQTT gateways on one Mosquitto (a short soak): Node clients hold
// the three gateways' addresses and move on when theirs is killed; lines
// flow both ways through gateway kills (SIGKILL, then a restart) and a
// broker restart. Each line must reach the plain MQTT subscriber, or the
// board, exactly once.
import assert from "node:assert/strict"
import { connect as mqttConnect } from "mqtt"
import { Client } from "../../src/server/index.js"
import { FaultProxy } from "../kit/proxy.js"
import { cleanup, closeAll, onCleanup, within, type Cli } from "../kit/util.js"
import { Mosquitto } from "../kit/mosquitto.js"
import { gatewayPort, gatewayProcess as startGateway, multiGatewayRun } from "../kit/gatewaysoak.js"

// Gateways here detect an outage within 1 s.
function gatewayProcess(broker: string, port: number, name: string): Cli {
    return startGateway(broker, port, name, 1000)
}

describe("MQTT gateways, several, with Mosquitto (short soak)", function () {
    this.timeout(240000)
    afterEach(closeAll)

    it("3 gateways, 4 Node clients: kills of each gateway and a broker restart: each line once both ways", async function () {
        const broker = cleanup(new Mosquitto())
        await broker.start()
        const r = await multiGatewayRun({ boards: 4, rounds: 5, perRound: 20, url: broker.url, broker })
        if (r.up.brokerResends > 0) console.log(`      (Mosquitto resent ${r.up.brokerResends} completed deliveries to the subscriber after its restart)`)
        assert.deepEqual({ lost: r.up.lost, publishedTwice: r.up.publishedTwice }, { lost: [], publishedTwice: [] }, "board -> subscriber")
        assert.deepEqual(r.down, { lost: [], dup: [] }, "publisher -> board")
    })
})

describe("MQTT gateways: a board that moves lets its old gateway go", function () {
    this.timeout(60000)
    afterEach(closeAll)

    it("a board cut off from gateway 1 (which stays up) moves to gateway 2; gateway 1 lets go of it on gateway 2's notice", async function () {
        const broker = cleanup(new Mosquitto())
        await broker.start()
        const g1 = gatewayProcess(broker.url, 0, "g1")
        const g2 = gatewayProcess(broker.url, 0, "g2")
        const [p1, p2] = await Promise.all([gatewayPort(g1), gatewayPort(g2)])
        const proxy = cleanup(new FaultProxy(p1))
        await proxy.listen()
        const mq = mqttConnect(broker.url, { clientId: "move-test", reconnectPeriod: 100 })
        onCleanup(() => void mq.end(true))
        await within(new Promise<void>((r) => mq.once("connect", () => r())), 10000, "MQTT client")
        const lines: string[] = []
        let onLine: () => void = () => undefined
        mq.on("message", (_t, p) => {
            lines.push(p.toString())
            onLine()
        })
        await mq.subscribeAsync("devs-iot/mv1/up", { qos: 2 })
        const board = cleanup(new Client({ id: "mv1", host: `127.0.0.1:${proxy.port},127.0.0.1:${p2}`, timeout: 1000, backoffFirst: 50, backoffCap: 300 }).start())
        await board.connected()
        await g1.waitFor(/link up.*mv1/, 5000)
        // Gateway 1 stays up, but the board can no longer reach it.
        proxy.stall(true)
        proxy.refuse(true)
        await g2.waitFor(/link up.*mv1/, 20000)
        await g1.waitFor(/taken over by another gateway: letting go/, 10000)
        const got = new Promise<void>((r) => (onLine = () => lines.includes("after the move") && r()))
        await board.write("after the move")
        await within(got, 10000, "line through gateway 2")
        assert.deepEqual(lines, ["after the move"])
    })
})
