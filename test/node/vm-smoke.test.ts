// The fast layer's look at the board: the real firmware bytecode in the
// DeviceScript simulator links up with the real Node server over loopback and
// lines go both ways. The full board suite is in the system layer.
import assert from "node:assert/strict"
import { Fleet, Server, type BoardReport } from "../../src/server/index.js"
import { buildSimImage, runSim, type SimImage, type SimRun } from "../../src/server/cli/sim.js"
import { freePort, within } from "../kit/util.js"

describe("board firmware in the simulator (smoke)", function () {
    this.timeout(120000)
    let img: SimImage | undefined
    let vm: SimRun | undefined
    let server: Server | undefined

    after(async function () {
        await vm?.stop()
        await server?.close()
        img?.remove()
    })

    it("links up with the server, echoes a qos line and reports itself", async function () {
        const port = await freePort()
        server = new Server({ port, host: "127.0.0.1", timeout: 1000 })
        await server.listen()
        const fleet = new Fleet(server)
        const reported = new Promise<BoardReport>((resolve) => {
            const check = () => {
                const r = fleet.board("smoke1")?.report
                if (r) resolve(r)
            }
            fleet.on("change", check)
        })
        img = await buildSimImage({ app: "testbed", id: "smoke1", host: "127.0.0.1", port, timeout: 1000, verbose: true })
        vm = await runSim(img.image)
        const conn = await within(server.clientConn("smoke1"), 30000, "board connected")
        assert.equal(conn.peer, "devs-iot")
        await conn.write("hello")
        assert.equal(await within(conn.readline(), 5000, "echo"), "hello")
        await vm.waitFor(/link up \(server speaks devs-iot/, 5000)
        const r = await within(reported, 10000, "the board's report")
        assert.equal(r.firmware, "simulator")
        assert.equal(r.reconnects, 0)
        assert.ok(r.uptime >= 0)
        assert.equal(r.rssi, null, "no WiFi in the simulator")
        fleet.detach()
    })
})
