// Delivery state across SIGKILL (system layer: real processes). A server
// process and Node client processes keep their delivery state on disk
// (--state); the server and the clients are killed with SIGKILL at random
// points under continuous two-way traffic (qos wait, qos no-wait, no qos),
// which includes kills between the application taking a line and its ACK.
// Every qos line whose write completed must be read exactly once across
// every life of its receiver: none lost, none read again after a restart.
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { check, failures } from "../soak/checker.js"
import { Soak, seeded } from "../soak/harness.js"

describe("delivery state across process kills (--state)", function () {
    this.timeout(300000)
    let soak: Soak | undefined
    let dir = ""
    afterEach(async () => {
        await soak?.close()
        soak = undefined
        if (dir) rmSync(dir, { recursive: true, force: true })
    })

    // `batch`: every Node end reads with readlines(), logging each batch in one write.
    async function killsUnderLoad(batch: boolean): Promise<void> {
        dir = mkdtempSync(join(tmpdir(), "devs-iot-state-kill-"))
        const notes: string[] = []
        soak = new Soak({ nodes: 2, boards: 0, timeout: 1000, interval: 20, stateDir: dir, batch, log: (s) => notes.push(s) })
        await soak.start()
        const rnd = seeded(11)
        const kinds = ["server-kill", "client-restart", "server-kill", "client-restart", "server-kill", "server-kill"] as const
        for (const kind of kinds) {
            await new Promise((r) => setTimeout(r, 200 + 600 * rnd()))
            const ids = soak.ids()
            const target = kind === "server-kill" ? "all" : ids[Math.floor(rnd() * ids.length)]!
            const f = await soak.inject(kind, target, rnd)
            for (const c of target === "all" ? ids : [target]) await soak.recovered(c, f.cleared, 30000)
        }
        const ok = await soak.stop()
        const r = check(soak.records)
        assert.ok(ok, `not every end finished its writes:\n${notes.join("\n")}`)
        assert.equal(failures(r, true), 0, `qos lines lost, duplicated, read again after a restart or out of order: ${JSON.stringify(r)}`)
        assert.ok(r.qos.up.delivered > 100 && r.qos.down.delivered > 100, "too little traffic to prove anything")
    }

    it("server and client kills under load: each qos line read exactly once, none read again by a restarted receiver", async function () {
        await killsUnderLoad(false)
    })

    it("the same with readlines(): a batch taken before a kill is not given again, none after it is lost", async function () {
        await killsUnderLoad(true)
    })
})
