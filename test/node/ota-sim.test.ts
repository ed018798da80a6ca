// Over-the-air deploy end to end in the DeviceScript simulator: the real
// devs-iot demo firmware, the runtime's own wssk client, the server's gateway.
// A deploy of a new build (its link comes up: kept), then one whose link
// cannot come up (wrong server port: rolled back to the previous program).
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Server } from "../../src/server/index.js"
import { buildSimImage, type SimImage } from "../../src/server/cli/sim.js"
import { OtaGateway } from "../../src/server/ota/gateway.js"
import { Ota } from "../../src/server/ota/ota.js"
import { sha256 } from "../../src/server/ota/wssk.js"
import { JacdacHost, runBoardVm, type BoardVm } from "../../src/server/ota/simboard.js"
import { freePort, within } from "../kit/util.js"

describe("OTA deploy in the simulator (wssk, demo firmware)", function () {
    this.timeout(600000)
    const images: SimImage[] = []
    let server: Server | undefined
    let gateway: OtaGateway | undefined
    let jacdac: JacdacHost | undefined
    let vm: BoardVm | undefined
    let dir = ""

    after(async function () {
        await vm?.stop()
        await jacdac?.close()
        await gateway?.close()
        await server?.close()
        for (const i of images) i.remove()
        if (dir) rmSync(dir, { recursive: true, force: true })
    })

    it("deploys a new program, checks its hash, and rolls back one whose link does not come up", async function () {
        const port = await freePort()
        const wrongPort = await freePort()
        const base = { app: "demo" as const, id: "b1", host: "127.0.0.1", timeout: 2000 }
        // Builds run one after another (the machine is shared).
        for (const c of [
            { ...base, port, interval: 2000 },
            { ...base, port, interval: 3000 },
            { ...base, port: wrongPort, interval: 2000 },
        ])
            images.push(await buildSimImage(c))
        const [a, b, bad] = images.map((i) => readFileSync(i.image))
        const hash = (x: Buffer) => sha256(x).toString("hex")

        server = new Server({ port, host: "127.0.0.1", timeout: 2000 })
        await server.listen()
        const key = randomBytes(32)
        gateway = new OtaGateway({ port: 0, host: "127.0.0.1", keys: new Map([["b1", key]]) })
        const logs: string[] = []
        gateway.on("log", (id, kind, text) => logs.push(`${id} ${kind} ${text}`))
        await gateway.listen()
        dir = mkdtempSync(join(tmpdir(), "devs-iot-ota-"))
        writeFileSync(join(dir, "devsconfig.json"), "{}\n")
        const ota = new Ota({ server, gateway, imagesDir: join(dir, "images"), linkUpWithin: 15000, sessionWithin: 90000 })
        ota.keep(a!) // the image the board was flashed with

        jacdac = new JacdacHost()
        vm = runBoardVm(images[0]!.image, await jacdac.listen(), dir)
        await within(server.clientConn("b1"), 60000, "the board's link")
        // What a Jacdac host on the board's USB does once per board.
        await jacdac.setConnectionString(`ws://wssk:${key.toString("hex")}@127.0.0.1:${gateway.port}/wssk/b1`)

        const t0 = performance.now()
        const ok = await ota.deploy(["b1"], b!, "test")
        const deployMs = performance.now() - t0
        assert.deepEqual(ok.boards.map((r) => [r.outcome, r.before, r.after]), [["deployed", hash(a!), hash(b!)]], ok.boards[0]!.detail)
        await vm.waitFor(new RegExp(`DevS-SHA256: ${hash(b!)}|start: devs-iot-sim-demo[\\s\\S]*start: devs-iot-sim-demo`), 5000)
        // The board's log came through the session, under its id.
        assert.ok(logs.includes("b1 runtime WSSK-H: send cmd=0x95"), logs.join("\n"))
        const before = logs.length

        const t1 = performance.now()
        const back = await ota.deploy(["b1"], bad!, "test")
        const rollbackMs = performance.now() - t1
        assert.deepEqual(back.boards.map((r) => [r.outcome, r.before, r.after]), [["rolled-back", hash(b!), hash(b!)]], back.boards[0]!.detail)
        assert.match(back.boards[0]!.detail, /previous program back, link up/)
        // The rollback session brought the board's log again.
        assert.ok(logs.length > before, "log lines from the rollback session")
        process.stderr.write(`      deploy of ${b!.length} bytes: ${deployMs.toFixed(0)} ms; deploy + rollback: ${rollbackMs.toFixed(0)} ms\n`)
    })
})
