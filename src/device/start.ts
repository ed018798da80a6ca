// Builds the Client an app runs on, from its configuration.
import * as ds from "@devicescript/core"
import { BoardKeys, Client } from "./client.js"
import { AppConfig } from "./config.js"
import { Light } from "./heartbeat.js"
import { Network } from "./network.js"

// The board entry's LED (pins.LED of the board definition). The simulator's
// entry sets none: it has no GPIO.
let boardLed: ds.OutputPin | undefined = undefined
export function setBoardLed(pin: ds.OutputPin | undefined): void {
    boardLed = pin
}

// Authentication, when the entry compiled it in (keyed.ts boardKeys).
let boardKeys: BoardKeys | undefined = undefined
export function setBoardKeys(keys: BoardKeys | undefined): void {
    boardKeys = keys
}

// The network when it is not the board's WiFi: the simulator's (SimNetwork,
// where sockets ignore WiFi), set by the entry devs-iot sim generates, so
// that board images do not compile it.
let boardNetwork: Network | undefined = undefined
export function setBoardNetwork(n: Network | undefined): void {
    boardNetwork = n
}

// The board's LED for an app that shows its own state on it. The client of
// that app must be made with `heartbeat` false: one owner per light.
export function appLight(): Light {
    return new Light(boardLed)
}

// `heartbeat` false: the app owns the LED (see appLight).
export function makeClient(c: AppConfig, onStatus?: (up: boolean) => void, heartbeat?: boolean): Client {
    return new Client({
        ...c, // id, host, port, timeout, watchdog, verbose, encrypt, report, firmware, heap
        network: boardNetwork,
        led: boardLed,
        heartbeat: heartbeat !== false,
        onStatus: onStatus,
        key: c.key ? Buffer.from(c.key, "hex") : undefined,
        keys: boardKeys,
        // A watchdog reboot halts the simulator's VM: restart the program there.
        onWatchdog: c.sim
            ? function () {
                  ds.restart()
              }
            : undefined,
    })
}

// Integer seconds since start: the device prints non-integers with 6 digits.
export function uptime(): number {
    return Math.floor(ds.millis() / 1000)
}

export interface Pending {
    n: number // writes not complete yet
    failed: number
}

// Starts a write in its own fiber, so several can be in flight (wait=false).
export function spawnWrite(client: Client, line: string, wait: boolean, pending: Pending): void {
    pending.n++
    setTimeout(async function () {
        try {
            await client.write(line, { wait: wait })
        } catch (e) {
            pending.failed++
        }
        pending.n--
    }, 0)
}
