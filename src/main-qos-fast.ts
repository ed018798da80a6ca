// Board firmware: the qos-fast app, configured by settings (see README, "A first board"),
// with authentication compiled in whatever the settings (what VS Code deploys;
// npm run build compiles it in only when IOT_KEY is set: tools/build-devs.mjs).
import { pins } from "@dsboard/devs_iot_esp32_devkit_c"
import { AppConfig } from "./device/config.js"
import { startBoard } from "./device/board.js"
import { boardKeys } from "./device/keyed.js"
import { qos } from "./apps/qos/board.js"

await startBoard("qos-fast", async function (c: AppConfig, role: string) {
    await qos(c, true)
}, pins.LED, boardKeys)
