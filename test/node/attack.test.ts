// The live attack run, short (npm run attack -- --quick, about 25 s): a server
// process, a Node client process and a probe exchange qos traffic while two
// attacker processes make thousands of hostile connections. Asserts what the
// run promises (no qos line lost, no crash, every end finished, memory
// bounded); prints the figures, asserts no speed.
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ROOT } from "../kit/devs.js"
import { within } from "../kit/util.js"

describe("live attack run (short)", function () {
    this.timeout(120000)

    it("npm run attack -- --quick: no qos line lost, no server crash, RSS bounded", async function () {
        const dir = mkdtempSync(join(tmpdir(), "devs-iot-attack-"))
        const json = join(dir, "report.json")
        const child = spawn(process.execPath, [join(ROOT, "dist/test/attack/main.js"), "--quick", "--json", json], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })
        let out = ""
        child.stdout!.on("data", (b: Buffer) => (out += b.toString()))
        child.stderr!.on("data", (b: Buffer) => (out += b.toString()))
        try {
            const code = await within(new Promise<number | null>((r) => child.once("exit", (c) => r(c))), 100000, "the attack run")
            const report = JSON.parse(readFileSync(json, "utf-8"))
            console.log(out.slice(out.indexOf("attack report")).replace(/^/gm, "      "))
            assert.equal(code, 0, out)
            assert.equal(report.failures, 0)
            assert.deepEqual(report.serverCrashes, [])
            assert.equal(report.everyEndDone, true)
            assert.equal(report.rssMB.bounded, true)
            assert.ok(report.hostile.connections > 500, "the attackers did attack")
            assert.ok(report.qos.up.delivered > 100 && report.qos.down.delivered > 100, "honest traffic flowed")
        } finally {
            // SIGTERM: the run kills its own children by pid on the way out.
            if (child.exitCode === null && child.pid) process.kill(child.pid, "SIGTERM")
            rmSync(dir, { recursive: true, force: true })
        }
    })
})
