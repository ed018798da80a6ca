// Firmware for the fault soak (test/soak): continuous two-way traffic, every
// line logged so a checker can prove exactly-once. Three streams to the
// server, one line every `interval` ms each: "w" qos with wait, "f" qos
// without wait (up to 8 in flight), "n" no qos. A line is
// "<stream>.<from>.<to>.<run>.<n>"; <run> is random per start, so lines of a
// restarted board are told apart. Logs: "@S <line>" once a write completed,
// "@R <line>" for each line read, "@I ..." for events. The line "stop" from
// the server ends the writers; "@I done" follows once nothing is pending.
import * as ds from "@devicescript/core"
import { AppConfig } from "../../src/device/config.js"
import { Client } from "../../src/device/client.js"
import { makeClient } from "../../src/device/start.js"
import { randomBytes } from "../../src/device/random.js"

interface Flow {
    stopping: boolean
    pending: number
    failed: number
}

const IN_FLIGHT = 8

function sendNoWait(client: Client, line: string, flow: Flow): void {
    flow.pending++
    setTimeout(async function () {
        try {
            await client.write(line, { wait: false })
            console.log("@S " + line)
        } catch (e) {
            flow.failed++
        }
        flow.pending--
    }, 0)
}

async function send(client: Client, line: string, qos: boolean, flow: Flow): Promise<void> {
    flow.pending++
    try {
        await client.write(line, { qos: qos })
        console.log("@S " + line)
    } catch (e) {
        flow.failed++
    }
    flow.pending--
}

// One line every `interval` ms, each written after the last completed.
async function stream(client: Client, prefix: string, qos: boolean, flow: Flow, interval: number): Promise<void> {
    let n = 0
    while (!flow.stopping) {
        await send(client, prefix + n++, qos, flow)
        await ds.sleep(interval)
    }
}

export async function soak(c: AppConfig): Promise<void> {
    const client = makeClient(c, function (up: boolean) {
        console.log("@I " + (up ? "up" : "down"))
    })
    const run = randomBytes(4).toString("hex")
    const head = "." + c.id + ".srv." + run + "."
    const flow: Flow = { stopping: false, pending: 0, failed: 0 }
    client.start()
    console.log("@I start " + run)
    setTimeout(async function () {
        while (true) {
            const line = await client.readline()
            if (line === "stop") flow.stopping = true
            else console.log("@R " + line)
        }
    }, 0)
    setTimeout(async function () {
        await stream(client, "w" + head, true, flow, c.interval)
    }, 0)
    setTimeout(async function () {
        await stream(client, "n" + head, false, flow, c.interval)
    }, 0)
    let n = 0
    while (!flow.stopping) {
        if (flow.pending < IN_FLIGHT + 2) sendNoWait(client, "f" + head + n++, flow)
        await ds.sleep(c.interval)
    }
    while (flow.pending > 0) await ds.sleep(20)
    console.log("@I done failed " + flow.failed)
}
