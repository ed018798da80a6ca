// Faults on real sockets and real processes: a server process, a Node client
// process and a board in the simulator, each client behind a FaultProxy, with
// continuous qos (wait and no-wait) and no-qos traffic both ways. Every fault
// kind hits each client once; after each, the link must carry lines both ways
// again. At the end the logs of every end must show each qos line exactly
// once within each life of the receiver, "w" lines in order, none lost.
// Recovery times are printed, never asserted.
import assert from "node:assert/strict"
import { writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { check, failures, median } from "../soak/checker.js"
import { FAULT_KINDS, Soak, seeded, type Fault } from "../soak/harness.js"

describe("faults on real sockets and processes (short soak)", function () {
    this.timeout(300000)
    let soak: Soak | undefined
    afterEach(async () => {
        await soak?.close()
        soak = undefined
    })

    it("every fault kind on a Node client and on a board: each qos line exactly once, both ways, links back after each", async function () {
        const notes: string[] = []
        soak = new Soak({ nodes: 1, boards: 1, timeout: 1000, interval: 100, log: (s) => notes.push(s) })
        await soak.start()
        const rnd = seeded(7)
        const recovery: Array<{ f: Fault; ms: number }> = []
        for (const id of soak.ids()) {
            for (const kind of FAULT_KINDS) {
                if (kind === "server-kill" && id !== soak.ids()[0]) continue
                const f = await soak.inject(kind, kind === "server-kill" ? "all" : id, rnd)
                for (const c of kind === "server-kill" ? soak.ids() : [id]) {
                    await soak.recovered(c, f.cleared, 30000)
                    recovery.push({ f, ms: soak.firstDelivery(c, f.cleared)! - f.cleared })
                }
            }
        }
        const ok = await soak.stop()
        const r = check(soak.records)
        const lines = recovery.map(({ f, ms }) => `${f.kind} ${f.target}${f.detail ? ` (${f.detail})` : ""}: ${ms} ms`)
        console.log(`      recovery (fault cleared -> next line read): median ${median(recovery.map((x) => x.ms))} ms\n        ${lines.join("\n        ")}`)
        console.log(`      qos up ${JSON.stringify(r.qos.up)}\n      qos down ${JSON.stringify(r.qos.down)}\n      no qos up ${JSON.stringify(r.noQos.up)}, down ${JSON.stringify(r.noQos.down)}`)
        assert.ok(ok, `not every end finished its writes:\n${notes.join("\n")}`)
        // Every qos line whose write completed is read exactly once: a line
        // is ACKed only once the receiving application has read it, so not
        // even a kill -9 of the receiver loses one. On a loss every end's log
        // goes to a file, to trace it.
        const lost = r.qos.up.lost + r.qos.down.lost
        if (lost > 0) {
            const file = join(tmpdir(), `devs-iot-short-soak-${Date.now()}.jsonl`)
            writeFileSync(file, soak.records.map((x) => JSON.stringify(x)).join("\n") + "\n")
            console.log(`      qos lines lost: ${JSON.stringify(r.examples.lost)} (${r.qos.up.lostInCrash + r.qos.down.lostInCrash} near a receiver's kill); every end's log: ${file}`)
        }
        assert.equal(failures(r), 0, `qos lines lost, duplicated or out of order: ${JSON.stringify(r)}`)
        // r.qos.*.crashDuplicated: a line read before a kill -9 and again by the
        // restarted process (its memory of ids is gone). Counted, not a failure.
        assert.ok(r.qos.up.delivered > 100 && r.qos.down.delivered > 100, "too little traffic to prove anything")
    })
})
