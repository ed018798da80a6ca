// Starts a firmware app on a board, with its settings. A setting that is
// present but unusable (or a missing IOT_HOST) is printed with its name and
// the board waits (no reboot loop), because only a new deploy can fix it.
import * as ds from "@devicescript/core"
import { AppConfig, boardSettings, checkKeys } from "./config.js"
import { setBoardKeys, setBoardLed } from "./start.js"
import type { BoardKeys } from "./client.js"
import { errorText } from "./socket.js"

// `led`: the heartbeat LED pin of the board definition (pins.LED); `keys`:
// boardKeys from keyed.ts in an image with authentication.
export async function startBoard(name: string, app: (c: AppConfig, role: string) => Promise<void>, led?: ds.OutputPin, keys?: BoardKeys): Promise<void> {
    setBoardLed(led)
    setBoardKeys(keys)
    let ok = false
    try {
        const s = await boardSettings()
        const c = s.config
        checkKeys(c, keys !== undefined)
        ok = true
        console.log("devs-iot: " + name + " as " + c.id + " -> " + c.host + ":" + c.port + (c.watchdog ? ", watchdog " + c.watchdog + " ms" : ", watchdog off"))
        await app(c, s.role)
    } catch (e) {
        if (ok) throw e
        console.log("devs-iot: configuration error: " + errorText(e))
        while (true) await ds.sleep(60000)
    }
}
