// The qos demo: the board and the server each send numbered lines and check
// that every one arrives exactly once (and in order with wait). Both print a
// report every `every` lines. qos-fast sends with wait=false, as fast as the
// send window allows. Server side: --app qos / --app qos-fast.
import * as ds from "@devicescript/core"
import { AppConfig } from "../../device/config.js"
import { QosCheck } from "./check.js"
import { makeClient, spawnWrite, Pending } from "../../device/start.js"

export async function qos(c: AppConfig, fast: boolean): Promise<void> {
    const name = fast ? "qos-fast" : "qos"
    const client = makeClient(c, undefined)
    client.start()
    const check = new QosCheck(!fast)
    setTimeout(async function () {
        while (true) {
            const line = await client.readline()
            const problem = check.add(line)
            if (problem !== "") console.log(name + ": " + problem)
            if (check.received % 20 === 0) console.log(name + ": " + check.report())
        }
    }, 0)
    let n = 0
    const pending: Pending = { n: 0, failed: 0 }
    while (true) {
        if (fast) {
            // A burst of 20 writes in flight at once (wait=false), then a pause.
            for (let i = 0; i < 20; i++) spawnWrite(client, "" + n++, false, pending)
            while (pending.n > 0) await ds.sleep(10)
        } else {
            try {
                await client.write("" + n)
                n++
            } catch (e) {
                // Refused (queue full in a long outage): send the same number again later.
                const m = (e as { message?: unknown }).message
                console.log(name + ": write refused: " + (typeof m === "string" ? m : "error"))
            }
        }
        await ds.sleep(fast ? c.interval : Math.floor(c.interval / 10))
    }
}
