// Several MQTT gateways on one Mosquitto (a short soak): Node clients hold
// the three gateways' addresses and move on when theirs is killed; lines
// flow both ways through gateway kills (SIGKILL, then a restart) and a
// broker restart. Each line must reach the plain MQTT subscriber, or the
// board, exactly once (down: see the known gap below).
import assert from "node:assert/strict"
import { cleanup, closeAll } from "../node/support/util.js"
import { Mosquitto } from "./support/mosquitto.js"
import { multiGatewayRun } from "./support/gatewaysoak.js"

describe("MQTT gateways, several, with Mosquitto (short soak)", function () {
    this.timeout(240000)
    afterEach(closeAll)

    it("3 gateways, 4 Node clients: kills of each gateway and a broker restart: up exactly once, down none lost", async function () {
        const broker = cleanup(new Mosquitto())
        await broker.start()
        const r = await multiGatewayRun({ boards: 4, rounds: 5, perRound: 20, url: broker.url, broker })
        if (r.up.brokerResends > 0) console.log(`      (Mosquitto resent ${r.up.brokerResends} completed deliveries to the subscriber after its restart)`)
        assert.deepEqual({ lost: r.up.lost, publishedTwice: r.up.publishedTwice }, { lost: [], publishedTwice: [] }, "board -> subscriber")
        // Known gap (docs/gateway.md, "Open edges"): a gateway kill may hand a
        // board a down line twice; counted here, and no line may be lost.
        if (r.down.dup.length > 0) console.log(`      (known gap: ${r.down.dup.length} down lines reached a board twice after gateway kills)`)
        assert.deepEqual(r.down.lost, [], "publisher -> board: none lost")
    })
})
