// Remote control: a button on one board switches an LED on the others,
// through the server (devs-iot server --app remote relays each line to every
// other board, adding "from"). On a board the button is the board's button
// service (BOOT on an ESP32 DevKitC) and the LED the status light; in the
// simulator the button presses itself every `interval` ms and the LED state
// is logged.
import * as ds from "@devicescript/core"
import { setStatusLight } from "@devicescript/runtime"
import { AppConfig } from "../config.js"
import { makeClient } from "./start.js"

export async function remote(c: AppConfig, role: string): Promise<void> {
    const client = makeClient(c, undefined)
    client.start()
    if (role !== "button") {
        setTimeout(async function () {
            while (true) {
                const line = await client.readline()
                let on = -1
                let from = "?"
                try {
                    const o = JSON.parse(line)
                    on = o.button === 1 ? 1 : o.button === 0 ? 0 : -1
                    if (typeof o.from === "string") from = o.from
                } catch (e) {
                    // not ours
                }
                if (on < 0) continue
                console.log("remote: LED " + (on ? "on" : "off") + " (button of " + from + ")")
                try {
                    await setStatusLight(on ? 0x200000 : 0)
                } catch (e) {
                    // no status light: the log line is the LED
                }
            }
        }, 0)
    }
    if (role === "led") return
    if (!c.sim) {
        // The board's button service (BOOT, GPIO0, on an ESP32 DevKitC).
        const button = new ds.Button()
        button.down.subscribe(async function () {
            console.log("remote: button pressed")
            await client.write('{"button":1}')
        })
        button.up.subscribe(async function () {
            console.log("remote: button released")
            await client.write('{"button":0}')
        })
        return
    }
    // The simulator: the button presses itself every `interval` ms.
    let state = 0
    while (true) {
        await ds.sleep(c.interval)
        state = state ? 0 : 1
        console.log("remote: button " + (state ? "pressed" : "released"))
        await client.write('{"button":' + state + "}")
    }
}
