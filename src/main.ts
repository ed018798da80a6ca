// Board firmware: the demo app, configured by settings (see README, "A first board").
import { pins } from "@dsboard/devs_iot_esp32_devkit_c"
import { AppConfig } from "./device/config.js"
import { startBoard } from "./device/board.js"
import { demo } from "./device/apps/demo.js"

await startBoard("demo", async function (c: AppConfig, role: string) {
    await demo(c)
}, pins.LED)
