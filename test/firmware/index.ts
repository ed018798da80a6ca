// Firmware the tests and benchmarks run in the simulator (`devs-iot sim --app
// NAME` from a clone of the repository), beside the apps of src/apps.
import { AppConfig } from "../../src/device/config.js"
import { runApp } from "../../src/apps/board.js"
import { bench } from "./bench.js"
import { soak } from "./soak.js"
import { testbed } from "./testbed.js"

export async function runTestApp(name: string, c: AppConfig, role: string): Promise<void> {
    if (name === "testbed") await testbed(c)
    else if (name === "soak") await soak(c)
    else if (name === "bench") await bench(c, role)
    else await runApp(name, c, role)
}
