// The board halves of the apps, by name (as `devs-iot sim --app NAME` runs
// them; the board entries src/main*.ts import their app directly).
import { AppConfig } from "../device/config.js"
import { demo } from "./demo/board.js"
import { qos } from "./qos/board.js"
import { remote } from "./remote/board.js"

export const APP_NAMES = ["demo", "remote", "qos", "qos-fast"]

export async function runApp(name: string, c: AppConfig, role: string): Promise<void> {
    if (name === "demo") await demo(c)
    else if (name === "remote") await remote(c, role)
    else if (name === "qos") await qos(c, false)
    else if (name === "qos-fast") await qos(c, true)
    else console.log("devs-iot: unknown app " + name + " (one of " + APP_NAMES.join(", ") + ")")
}
