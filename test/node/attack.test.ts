// The live attack run, short (npm run attack -- --quick, about 25 s): a server
// process, a Node client process and a probe exchange qos traffic while two
// attacker processes make thousands of hostile connections. Asserts what the
// run promises (no qos line lost, no crash, every end finished, memory
// bounded); prints the figures, asserts no speed.
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ROOT } from "../kit/devs.js"
import { until, within } from "../kit/util.js"
import { Soak } from "../soak/harness.js"

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

    // An attacker's id line, then bytes that reach the server after its
    // warm-up (an attacker or a server stalled between two reads, under
    // load): the server takes it for a v1 client, whose link comes up. The
    // soak's server must not write to it: those writes, pending for ever once
    // the attacker is gone, kept it from finishing, and the run failed.
    it("an attacker whose link came up does not keep the soak's server from finishing", async function () {
        const notes: string[] = []
        const soak = new Soak({ nodes: 1, boards: 0, timeout: 1000, interval: 50, log: (s) => notes.push(s) })
        try {
            await soak.start()
            const s = connect({ port: soak.port, host: "127.0.0.1" })
            s.on("error", () => {})
            s.write("a0-bigline-1\nzz\n")
            const id = "a0-bigline-1"
            const seen = () => soak.records.some((r) => r.who === "srv" && r.kind === "I" && (r.text === `connect ${id}` || r.text === `stranger ${id}`))
            await until(seen, 10000, "the attacker's link up")
            s.destroy()
            assert.equal(await soak.stop(15000), true, notes.join("\n"))
        } finally {
            await soak.close()
        }
    })
})
