// The demo of micropython-iot: the board sends [connects, count, seconds up]
// every `interval` ms and prints what the server sends ([count, seconds up]).
// Server side: devs-iot server --app demo (ids "1" to "4").
import * as ds from "@devicescript/core"
import { AppConfig } from "../../device/config.js"
import { makeClient, uptime } from "../../device/start.js"

export async function demo(c: AppConfig): Promise<void> {
    const client = makeClient(c, function (up: boolean) {
        console.log("demo: link " + (up ? "up" : "down"))
    })
    client.start()
    setTimeout(async function () {
        while (true) {
            const line = await client.readline()
            console.log("demo: got " + line + " from the server")
        }
    }, 0)
    await client.connected()
    let count = 0
    while (true) {
        const data = "[" + client.connects + "," + count + "," + uptime() + "]"
        try {
            await client.write(data)
            console.log("demo: sent " + data)
            count++
        } catch (e) {
            // Refused (e.g. EQUEUEFULL in a long outage): skip this one, keep going.
            const o = e as { code?: unknown; message?: unknown }
            console.log("demo: write refused: " + (typeof o.code === "string" ? o.code + " " : "") + (typeof o.message === "string" ? o.message : ""))
        }
        await ds.sleep(c.interval)
    }
}
