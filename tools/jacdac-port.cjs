// Preloaded into DeviceScript's `devs run --tcp`: the CLI connects its Jacdac
// transport to the fixed address 127.0.0.1:8082. This sends that connection to
// the port in DEVS_IOT_JACDAC_PORT instead, so every runner uses a free port
// of its own and nothing else on the machine can break or share it.
"use strict"
const net = require("node:net")
const port = Number(process.env.DEVS_IOT_JACDAC_PORT)
if (Number.isInteger(port) && port > 0 && port < 65536) {
    const original = net.createConnection
    net.createConnection = function (p, host, ...rest) {
        if (p === 8082 && host === "127.0.0.1") return original.call(this, port, host, ...rest)
        return original.call(this, p, host, ...rest)
    }
    net.connect = net.createConnection
}
