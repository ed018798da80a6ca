// Remote control: a button on one board switches an LED on the others,
// through the server (devs-iot server --app remote relays each line to every
// other board, adding "from"). On a board the button is the board's button
// service (BOOT on an ESP32 DevKitC) and the LED the board's LED (pins.LED,
// else the status light); in the simulator the button presses itself every
// `interval` ms and the LED state is logged.
//
// Presses. DeviceScript runs an event handler in its own fiber and, while it
// runs, merges every further event of that kind into one more run. So the
// handlers here only note the button's state and return at once; one sender
// fiber sends the state whenever it differs from the last one sent. Fast
// presses then cost no messages but never a wrong final state, and a write
// the client refuses (queue full in a long outage) is retried, not lost.
// The LED is this app's: its client runs without a heartbeat (one owner per
// light), except in role "button", which has no LED to show.
import * as ds from "@devicescript/core"
import { AppConfig } from "../../device/config.js"
import { Client } from "../../device/client.js"
import { appLight, makeClient } from "../../device/start.js"

interface ButtonState {
    want: number // 1 pressed, 0 released
    sent: number // last state the server ACKed, -1 none
    presses: number
    changed: ds.Emitter<number>
}

function problem(e: unknown): string {
    const o = e as { code?: unknown; message?: unknown }
    const m = typeof o.message === "string" ? o.message : "error"
    return typeof o.code === "string" ? o.code + " " + m : m
}

// Sends the button's state each time it differs from what was sent.
async function sender(client: Client, b: ButtonState): Promise<void> {
    while (true) {
        if (b.want === b.sent) {
            await ds.wait(b.changed, 1000)
            continue
        }
        const v = b.want
        try {
            await client.write('{"button":' + v + "}")
            b.sent = v
        } catch (e) {
            console.log("remote: write refused (" + problem(e) + "); retrying in 1 s")
            await ds.sleep(1000)
        }
    }
}

function press(b: ButtonState, v: number): void {
    b.want = v
    if (v) b.presses++
    console.log("remote: button " + (v ? "pressed" : "released") + " (" + b.presses + " presses)")
    b.changed.emit(0)
}

export async function remote(c: AppConfig, role: string): Promise<void> {
    const showsLed = role !== "button"
    const client = makeClient(c, undefined, !showsLed)
    client.start()
    if (showsLed) {
        const light = appLight()
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
                light.set(on ? 0x200000 : 0)
            }
        }, 0)
    }
    if (role === "led") return
    const b: ButtonState = { want: 0, sent: -1, presses: 0, changed: ds.emitter<number>() }
    setTimeout(async function () {
        await sender(client, b)
    }, 0)
    if (!c.sim) {
        // The board's button service (BOOT, GPIO0, on an ESP32 DevKitC). The
        // handlers cannot throw and never wait.
        const button = new ds.Button()
        button.down.subscribe(function () {
            press(b, 1)
        })
        button.up.subscribe(function () {
            press(b, 0)
        })
        return
    }
    // The simulator: the button presses itself every `interval` ms.
    while (true) {
        await ds.sleep(c.interval)
        press(b, b.want ? 0 : 1)
    }
}
