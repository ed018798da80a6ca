// Firmware for the benchmarks (npm run bench). The board times its own qos
// writes with ds.millis() (whole ms, and the VM's clock only moves between
// fibers' turns, so a sample is the number of ms ticks the write spanned),
// reads and drops every other line (the server's round trips), and can fill
// its heap with ballast to show how much is free (DeviceScript has no heap
// statistics: an allocation that fails panics the VM, so the last total it
// printed is the answer).
//   {"cmd":"rtt","n":N}   N qos writes with wait, timed; then {"rtt":{"n":N,"total":MS,"hist":[[ms,count],...]}}
//   {"cmd":"ballast"}     allocate 1 KB blocks until out of memory, printing "bench: ballast BYTES"
//   {"cmd":"hold","ms":M} stop reading for M ms (a burst fills the receive queue and backlog), then ballast
// Mode "ballast" (the role argument) fills the heap at once, before any client exists.
import * as ds from "@devicescript/core"
import { AppConfig } from "../../src/device/config.js"
import { Client } from "../../src/device/client.js"
import { makeClient } from "../../src/device/start.js"

const PAYLOAD = "t=21.50 h=40.10 p=1013.25 n=0001"
const BUCKETS = 200 // whole ms; slower writes count in the last bucket

export async function bench(c: AppConfig, mode: string): Promise<void> {
    if (mode === "ballast") {
        await ballast()
        return
    }
    const client = makeClient(c, undefined)
    client.start()
    console.log("bench: started " + c.id)
    while (true) {
        const line = await client.readline()
        if (line.charCodeAt(0) !== 123) continue
        let o: any = undefined
        try {
            o = JSON.parse(line)
        } catch (e) {
            continue
        }
        if (o.cmd === "rtt") await client.write(await roundTrips(client, o.n))
        else if (o.cmd === "ballast") await ballast()
        else if (o.cmd === "hold") {
            console.log("bench: holding")
            await ds.sleep(o.ms)
            await ballast()
        }
    }
}

async function roundTrips(client: Client, n: number): Promise<string> {
    const counts: number[] = []
    for (let i = 0; i < BUCKETS; i++) counts.push(0)
    let total = 0
    for (let i = 0; i < n; i++) {
        const t0 = ds.millis()
        await client.write(PAYLOAD)
        const dt = Math.floor(ds.millis() - t0)
        total += dt
        counts[dt < BUCKETS ? dt : BUCKETS - 1] += 1
    }
    let hist = ""
    for (let ms = 0; ms < BUCKETS; ms++) {
        if (counts[ms] === 0) continue
        if (hist !== "") hist += ","
        hist += "[" + ms + "," + counts[ms] + "]"
    }
    return '{"rtt":{"n":' + n + ',"total":' + total + ',"hist":[' + hist + "]}}"
}

async function ballast(): Promise<void> {
    const keep: Buffer[] = []
    let total = 0
    while (true) {
        keep.push(Buffer.alloc(1024))
        total += 1024
        console.log("bench: ballast " + total)
        await ds.sleep(0)
    }
}
