// The fast layer's look at the board: the real firmware bytecode in the
// DeviceScript simulator links up with the real Node server over loopback and
// lines go both ways. The full board suite is in the system layer.
import assert from "node:assert/strict"
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Fleet, Server, type BoardReport } from "../../src/server/index.js"
import { buildSimImage, runSim, VmOutput, type SimImage, type SimRun } from "../../src/server/cli/sim.js"
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

// `devs-iot sim` runs for days: what the VM printed must not pile up, and a
// reader's mark must still find what comes after it.
describe("the simulator's output window", function () {
    it("keeps only the recent output; marks and match offsets count from the start of the run", async function () {
        const out = new VmOutput(1000)
        const line = "x".repeat(99) + "\n"
        for (let i = 0; i < 100; i++) out.add(line)
        const mark = out.end
        assert.equal(mark, 10000)
        assert.ok(out.recent.length <= 2000, `${out.recent.length} characters kept`)
        assert.ok(out.recent.startsWith("x") && out.recent.endsWith("\n"), "the window starts at a line")
        const seen = out.waitFor(/found (\d+)/, 5000, mark)
        for (let i = 0; i < 50; i++) out.add(line)
        out.add("found 7\n")
        const m = await seen
        assert.equal(m[1], "7")
        assert.equal(m.index, mark + 50 * line.length)
        // A mark older than the window searches what is left of it.
        const again = await out.waitFor(/found/, 5000, 0)
        assert.equal(again.index, m.index)
        assert.ok(out.recent.length <= 2000)
    })
})

// What waits for the end of a line is bounded too: a VM that prints without
// newlines must not grow it. A preload takes the VM process's place (before
// the DeviceScript CLI loads) and prints 1 MB with no newline, then a line.
describe("the simulator's unfinished line", function () {
    this.timeout(60000)
    let root = ""
    before(() => (root = mkdtempSync(join(tmpdir(), "devs-iot-vm-lines-"))))
    after(() => rmSync(root, { recursive: true, force: true }))

    it("is passed on in marked pieces of at most `keep` characters, nothing lost; the VM runs in a temp folder of its own, removed at its exit", async function () {
        const preload = join(root, "print.cjs")
        writeFileSync(
            preload,
            `const { writeSync } = require("node:fs")
writeSync(1, "cwd=" + process.cwd() + "\\n")
for (let i = 0; i < 100; i++) writeSync(1, "x".repeat(10000))
writeSync(1, "\\nend\\n")
process.exit(0)
`
        )
        const tmp = join(root, "tmp")
        mkdirSync(tmp)
        const saved = { NODE_OPTIONS: process.env["NODE_OPTIONS"], TMPDIR: process.env["TMPDIR"] }
        const lines: string[] = []
        let vm: SimRun
        try {
            process.env["NODE_OPTIONS"] = `--require ${preload}`
            process.env["TMPDIR"] = tmp
            vm = await runSim(join(root, "unused.devs"), (l) => lines.push(l), 1000)
        } finally {
            for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]
            else process.env[k] = v
        }
        assert.equal(await within(vm.exited, 30000, "the preload's exit"), 0)
        await vm.waitFor(/end\n/, 5000)
        assert.equal(lines.at(-1), "end")
        const pieces = lines.slice(1, -1)
        for (const p of pieces) assert.ok(p.length <= 1000 + " [cut]".length, `a piece of ${p.length} characters`)
        assert.equal(pieces.join("").replace(/ \[cut\]/g, ""), "x".repeat(1000000))
        assert.ok(vm.output.length <= 2000, `${vm.output.length} characters kept`)
        assert.match(lines[0]!, new RegExp(`^cwd=${tmp}/devs-iot-vm-`), "the VM's folder")
        assert.deepEqual(readdirSync(tmp), [], "its folder removed")
    })
})
