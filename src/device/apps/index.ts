// The firmware apps, by name (as `npm run sim -- --app NAME` and the board
// entries src/main*.ts use them).
import { AppConfig } from "../config.js"
import { bench } from "./bench.js"
import { demo } from "./demo.js"
import { qos } from "./qos.js"
import { remote } from "./remote.js"
import { soak } from "./soak.js"
import { testbed } from "./testbed.js"

export const APP_NAMES = ["demo", "remote", "qos", "qos-fast", "testbed", "soak", "bench"]

export async function runApp(name: string, c: AppConfig, role: string): Promise<void> {
    if (name === "demo") await demo(c)
    else if (name === "remote") await remote(c, role)
    else if (name === "qos") await qos(c, false)
    else if (name === "qos-fast") await qos(c, true)
    else if (name === "testbed") await testbed(c)
    else if (name === "soak") await soak(c)
    else if (name === "bench") await bench(c, role)
    else console.log("devs-iot: unknown app " + name + " (one of " + APP_NAMES.join(", ") + ")")
}
