// A board (the real firmware in the DeviceScript simulator) behind MQTT
// gateways on Mosquitto: its IOT_HOST lists a dead address and two gateways.
// It skips the dead one, its lines reach a plain MQTT subscriber and lines
// published to it reach it; when its gateway is SIGKILLed it moves to the
// other, and each of its lines is published once.
import assert from "node:assert/strict"
import { connect as mqttConnect, type MqttClient } from "mqtt"
import { buildSimImage, runSim, type SimImage, type SimRun } from "../../src/server/cli/sim.js"
import { cleanup, closeAll, freePort, onCleanup, within, type Cli } from "../kit/util.js"
import { Mosquitto } from "../kit/mosquitto.js"
import { Deliveries } from "../kit/deliveries.js"
import { gatewayPort, gatewayProcess as startGateway } from "../kit/gatewaysoak.js"

// Gateways here detect an outage within 1 s.
function gatewayProcess(broker: string, port: number, name: string): Cli {
    return startGateway(broker, port, name, 1000)
}

describe("a board in the simulator behind MQTT gateways (Mosquitto)", function () {
    this.timeout(180000)
    let img: SimImage
    let broker: Mosquitto
    let g1: Cli
    let g2: Cli

    // The gateways listen before the image that holds their ports is built:
    // a port picked free before the build could be taken by the end of it.
    before(async function () {
        this.timeout(300000)
        broker = cleanup(new Mosquitto())
        await broker.start()
        g1 = gatewayProcess(broker.url, 0, "g1")
        g2 = gatewayProcess(broker.url, 0, "g2")
        const [p1, p2] = await Promise.all([gatewayPort(g1), gatewayPort(g2)])
        const dead = await freePort()
        img = await buildSimImage({ app: "testbed", id: "vb1", host: `127.0.0.1:${dead},127.0.0.1:${p1},127.0.0.1:${p2}`, port: 8123, timeout: 1000, verbose: true })
    })
    after(async () => {
        await closeAll()
        img?.remove()
    })

    it("skips a dead address, lines both ways, and moves to the other gateway when its own is killed: each line published once", async function () {
        const mq: MqttClient = mqttConnect(broker.url, { clientId: "vb-test", clean: false, reconnectPeriod: 100 })
        onCleanup(() => void mq.end(true))
        await within(new Promise<void>((r) => mq.once("connect", () => r())), 10000, "MQTT client connected")
        const up = new Deliveries()
        let online: () => void = () => undefined
        mq.on("message", (t, p, packet) => {
            if (t.endsWith("/up")) up.add(p.toString(), packet)
            else if (p.toString() === "online") online()
        })
        const isOnline = new Promise<void>((r) => (online = r))
        await mq.subscribeAsync("devs-iot/vb1/up", { qos: 2 })
        await mq.subscribeAsync("devs-iot/vb1/status", { qos: 1 })
        const vm: SimRun = await runSim(img.image)
        onCleanup(() => vm.stop())
        await within(isOnline, 60000, "board online through a gateway")
        await g1.waitFor(/link up.*vb1/, 5000) // the first live address in its list
        // Down and back up: the testbed echoes a line.
        await mq.publishAsync("devs-iot/vb1/down", "hello", { qos: 1 })
        await within(up.wait("hello"), 20000, "the board's echo on devs-iot/vb1/up")
        // The board sends 60 lines; its gateway is killed after the first 20 arrive.
        await mq.publishAsync("devs-iot/vb1/down", JSON.stringify({ cmd: "send", n: 60, prefix: "v", qos: true, wait: true }), { qos: 1 })
        await within(up.wait("v19"), 30000, "20 lines up")
        g1.stop()
        await within(up.wait(JSON.stringify({ sent: 60, failed: 0 })), 90000, "the board's report that it sent 60 lines")
        await g2.waitFor(/link up.*vb1/, 5000) // logged before its lines went up
        const r = up.check(Array.from({ length: 60 }, (_, i) => "v" + i))
        assert.deepEqual({ lost: r.lost, publishedTwice: r.publishedTwice }, { lost: [], publishedTwice: [] })
    })
})
