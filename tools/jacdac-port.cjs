// Preloaded into DeviceScript's `devs run --tcp` (src/server/cli/sim.ts).
//
// 1. The CLI connects its Jacdac transport to the fixed address
//    127.0.0.1:8082. This sends that connection to the port in
//    DEVS_IOT_JACDAC_PORT instead, so every runner uses a free port of its own
//    and nothing else on the machine can break or share it.
// 2. The simulator hands the VM whatever Node read from a board's TCP socket
//    in one event (up to 64 KB), which a board never sees: the ESP32 build
//    reads at most 1 KB per event and reads again only when the VM has taken
//    the last one. Board sockets here do the same: data arrives in pieces of
//    at most DEVS_IOT_READ_CHUNK bytes (1024 by default), one per timer tick,
//    with the socket paused in between, so heap figures and long-line tests
//    mean what they would mean on a board.
"use strict"
const net = require("node:net")
const port = Number(process.env.DEVS_IOT_JACDAC_PORT)
const chunkEnv = Number(process.env.DEVS_IOT_READ_CHUNK)
const CHUNK = Number.isInteger(chunkEnv) && chunkEnv > 0 ? chunkEnv : 1024
const original = net.createConnection

function readLikeABoard(sock) {
    const emit = sock.emit
    const pending = []
    let draining = false
    function drain() {
        const piece = pending.shift()
        if (piece === undefined) {
            draining = false
            if (!sock.destroyed) sock.resume()
            return
        }
        if (typeof piece === "function") piece()
        else emit.call(sock, "data", piece)
        setTimeout(drain, 1)
    }
    sock.emit = function (event, ...args) {
        if (event !== "data") {
            // An end, close or error behind queued data comes after it.
            if (!draining || event === "connect") return emit.call(this, event, ...args)
            pending.push(() => emit.call(sock, event, ...args))
            return true
        }
        const buf = args[0]
        for (let i = 0; i < buf.length; i += CHUNK) pending.push(buf.subarray(i, i + CHUNK))
        if (!draining) {
            draining = true
            sock.pause()
            drain()
        }
        return true
    }
    return sock
}

net.createConnection = function (p, host, ...rest) {
    if (p === 8082 && host === "127.0.0.1" && Number.isInteger(port) && port > 0 && port < 65536)
        return original.call(this, port, host, ...rest)
    // The simulator opens board sockets with an options object.
    if (typeof p === "object" && p !== null) return readLikeABoard(original.call(this, p, host, ...rest))
    return original.call(this, p, host, ...rest)
}
net.connect = net.createConnection
