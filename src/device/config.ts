// What a firmware app needs to know, and where a board gets it: DeviceScript
// settings (.env.defaults / .env.local, deployed with the bytecode). Keys are
// at most 13 characters. Every value is checked, and a bad one stops the
// firmware with a message that names the setting.
import * as ds from "@devicescript/core"
import { readSetting } from "@devicescript/settings"
import { checkClientId, isHex } from "../shared/index.js"

export interface AppConfig {
    id: string
    host: string
    port: number
    timeout: number
    interval: number // ms between demo messages
    watchdog: number // ms; 0 = off
    verbose: boolean
    sim: boolean // running in the simulator: no WiFi, no GPIO
    key?: string // IOT_KEY: 64 hex digits (32 bytes), or "" for none (issue 9)
    encrypt?: boolean // IOT_ENCRYPT: encrypt the messages the board sends
    report?: number // IOT_REPORT: ms between the board's reports of itself; 0 = off (default 60000)
    firmware?: string // IOT_FIRMWARE: the version it reports (default "unknown")
}

export class ConfigError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "ConfigError"
    }
}

function num(name: string, v: unknown, min: number, max: number): number {
    const n = typeof v === "string" ? +v : v
    if (typeof n !== "number" || n !== n || Math.floor(n) !== n || n < min || n > max)
        throw new ConfigError("setting " + name + " must be a whole number from " + min + " to " + max)
    return n
}

export function checkConfig(c: AppConfig): AppConfig {
    const p = checkClientId(c.id)
    if (p !== "") throw new ConfigError("setting IOT_ID: " + p)
    if (typeof c.host !== "string" || c.host === "") throw new ConfigError("setting IOT_HOST is missing: set it to the server's address in .env.local")
    num("IOT_PORT", c.port, 1, 65535)
    num("IOT_TIMEOUT", c.timeout, 100, 3600000)
    num("IOT_INTERVAL", c.interval, 10, 3600000)
    num("IOT_WATCHDOG", c.watchdog, 0, 3600000)
    if (c.report !== undefined) num("IOT_REPORT", c.report, 0, 86400000)
    const k = c.key === undefined ? "" : c.key
    if (k !== "" && !isHex(k, 64)) throw new ConfigError("setting IOT_KEY must be 64 lowercase hex digits (32 bytes), e.g. from devs-iot keygen")
    if (c.encrypt && k === "") throw new ConfigError("setting IOT_ENCRYPT needs IOT_KEY")
    return c
}

// The board's configuration, from settings. IOT_ID defaults to the device id.
export async function boardConfig(): Promise<AppConfig> {
    const id = await readSetting("IOT_ID", "")
    const c: AppConfig = {
        id: id !== "" ? id : ds.deviceIdentifier("self"),
        host: await readSetting("IOT_HOST", ""),
        port: num("IOT_PORT", await readSetting("IOT_PORT", 8123), 1, 65535),
        timeout: num("IOT_TIMEOUT", await readSetting("IOT_TIMEOUT", 2000), 100, 3600000),
        interval: num("IOT_INTERVAL", await readSetting("IOT_INTERVAL", 5000), 10, 3600000),
        watchdog: num("IOT_WATCHDOG", await readSetting("IOT_WATCHDOG", 0), 0, 3600000),
        verbose: (await readSetting("IOT_VERBOSE", 0)) ? true : false,
        sim: false,
        key: await readSetting("IOT_KEY", ""),
        encrypt: (await readSetting("IOT_ENCRYPT", 0)) ? true : false,
        report: num("IOT_REPORT", await readSetting("IOT_REPORT", 60000), 0, 86400000),
        firmware: await readSetting("IOT_FIRMWARE", ""),
    }
    return checkConfig(c)
}
