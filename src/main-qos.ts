// Board firmware: the qos app, configured by settings (see README, "A first board").
import { pins } from "@dsboard/devs_iot_esp32_devkit_c"
import { AppConfig } from "./device/config.js"
import { startBoard } from "./device/board.js"
import { qos } from "./device/apps/qos.js"

await startBoard("qos", async function (c: AppConfig, role: string) {
    await qos(c, false)
}, pins.LED)
