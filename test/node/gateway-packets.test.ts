// The packets the gateway writes itself, byte for byte what mqtt-packet
// (MQTT.js's encoder) makes of the same packet.
import assert from "node:assert/strict"
import { createRequire } from "node:module"
import { publishBytes, pubrelBytes } from "../../src/server/gateway.js"

// mqtt-packet as MQTT.js resolves it (a dependency of mqtt, not of this package).
const mqttPacket = createRequire(createRequire(import.meta.url).resolve("mqtt"))("mqtt-packet") as { generate(packet: object, opts: object): Buffer }

describe("gateway: packets written without mqtt-packet", function () {
    it("a QoS 2 PUBLISH, at each remaining-length size boundary, with and without DUP, with UTF-8 payloads", function () {
        const topic = "devs-iot/bench-b/up"
        const fixed = 2 + Buffer.byteLength(topic) + 2
        // Payload sizes whose remaining length is 127, 128, 16383, 16384 (1 and 2, 2 and 3 length bytes), and more.
        const sizes = [1, 32, 127 - fixed, 128 - fixed, 16383 - fixed, 16384 - fixed, 70000]
        for (const size of sizes) {
            for (const payload of ["x".repeat(size), "é".repeat(Math.ceil(size / 2))]) {
                for (const [pid, dup] of [[1, false], [256, true], [65535, false]] as Array<[number, boolean]>) {
                    const want = mqttPacket.generate({ cmd: "publish", topic, payload, qos: 2, retain: false, messageId: pid, dup }, { protocolVersion: 4 })
                    const got = publishBytes(Buffer.from(topic), payload, pid, dup)
                    assert.ok(got.equals(want), `payload of ${Buffer.byteLength(payload)} bytes, pid ${pid}, dup ${dup}`)
                }
            }
        }
    })

    it("a PUBREL", function () {
        for (const pid of [1, 255, 256, 4097, 65535]) assert.ok(pubrelBytes(pid).equals(mqttPacket.generate({ cmd: "pubrel", messageId: pid }, { protocolVersion: 4 })), `pid ${pid}`)
    })
})
