// What a firmware app needs to know, and where a board gets it: DeviceScript
// settings (.env.defaults / .env.local, deployed with the bytecode). Every
// board setting is defined once in boardSettingDefs() (name, kind, range,
// default, doc).
// DeviceScript's .env parser turns a value that reads as JSON into that JSON
// value (IOT_ID=1 arrives as the number 1), so each kind says what it accepts.
// A setting that is present but unusable stops the firmware with a message
// that names it: never a silent default.
import * as ds from "@devicescript/core"
import { readSetting } from "@devicescript/settings"
import { checkClientId, isHex, parseServers } from "../shared/index.js"
import { WATCHDOG } from "../shared/watchdog.js"
import { REPORT_EVERY } from "../shared/report.js"
import { INTERVAL, PORT, Range, TIMEOUT } from "../shared/config.js"
import { isWhole, wholeRange } from "../shared/whole.js"

export interface AppConfig {
    id: string
    host: string
    port: number
    timeout: number
    interval: number // ms between demo messages
    watchdog: number // ms; 0 = off
    verbose: boolean // log each step of the link: WiFi, connect, outage, resend
    sim: boolean // running in the simulator: no WiFi, no GPIO
    key?: string // IOT_KEY: 64 hex digits (32 bytes), or "" for none (no authentication)
    encrypt?: boolean // IOT_ENCRYPT: encrypt the messages the board sends
    report?: number // IOT_REPORT: ms between the board's reports of itself; 0 = off (default 60000)
    firmware?: string // IOT_FIRMWARE: the version it reports (default "unknown")
    heap?: number // simulator only: size the client for this chip heap (the simulator's archId is always "wasm")
}

export class ConfigError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "ConfigError"
    }
}

// kind: "text" (a string, default ""), "id" (text or a whole number,
// default ""), "flag" (0/1 or false/true, default 0), "int" (a whole number
// in `range`, default its dflt). The comment after a row is its doc
// (tools/settings-doc.mjs puts it in docs/settings.md): the board never
// reads it.
export interface SettingDef {
    name: string
    kind: string
    range?: Range // "int" only
}

// A function, not a module-level table: the table is needed once at start,
// and a resident one costs heap for the whole run.
export function boardSettingDefs(): SettingDef[] {
    return [
        { name: "IOT_HOST", kind: "text" }, // the server's address (required), or several, host[:port] separated by commas: the next is tried when a connect fails or no link comes up (several gateways)
        { name: "IOT_PORT", kind: "int", range: PORT }, // the server's port
        { name: "IOT_ID", kind: "id" }, // the board's id (default: its device id)
        { name: "IOT_TIMEOUT", kind: "int", range: TIMEOUT }, // ms; the same as the server's --timeout
        { name: "IOT_INTERVAL", kind: "int", range: INTERVAL }, // demo apps: ms between messages
        { name: "IOT_WATCHDOG", kind: "int", range: WATCHDOG }, // ms without progress before a reboot; 0 = off; with a large IOT_TIMEOUT keep it above 4 x IOT_TIMEOUT plus a minute (three unanswered connects, then a WiFi rejoin)
        { name: "IOT_VERBOSE", kind: "flag" }, // 1 = log each step
        { name: "IOT_ROLE", kind: "text" }, // remote demo: button, led, or empty for both
        { name: "IOT_KEY", kind: "text" }, // 64 hex digits: authenticate (secret: .env.local)
        { name: "IOT_ENCRYPT", kind: "flag" }, // 1 = encrypt what the board sends (needs IOT_KEY)
        { name: "IOT_REPORT", kind: "int", range: REPORT_EVERY }, // ms between the board's reports of itself to the server; 0 = off
        { name: "IOT_FIRMWARE", kind: "text" }, // the firmware version the board reports
    ]
}

function kindName(v: unknown): string {
    if (v === null) return "null"
    if (typeof v === "object") return Array.isArray(v) ? "a list" : "an object"
    if (typeof v === "number") return "the number " + v
    return typeof v === "boolean" ? "" + v : typeof v
}

// The value of one setting as read (undefined: absent), checked against its
// definition; throws ConfigError naming the setting.
export function settingValue(d: SettingDef, v: unknown): string | number {
    if (v === undefined) return d.range !== undefined ? d.range.dflt : d.kind === "flag" ? 0 : ""
    const bad = "setting " + d.name + " "
    if (d.kind === "text") {
        if (typeof v !== "string")
            throw new ConfigError(bad + "must be text, got " + kindName(v) + ' (write it as a JSON string: ' + d.name + '="...")')
        if (v.length > 0 && (v.charCodeAt(v.length - 1) === 32 || v.charCodeAt(0) === 32))
            throw new ConfigError(bad + "has a space at its start or end (the .env parser keeps it): remove it")
        return v
    }
    if (d.kind === "id") {
        if (isWhole(v, 0, 1e15 - 1)) return "" + v
        if (typeof v !== "string")
            throw new ConfigError(bad + "must be text or a whole number, got " + kindName(v) + ' (write it as a JSON string: ' + d.name + '="...")')
        return v
    }
    if (d.kind === "flag") {
        if (v === 0 || v === false) return 0
        if (v === 1 || v === true) return 1
        throw new ConfigError(bad + "must be 0 or 1, got " + kindName(v))
    }
    const r = d.range as Range
    const n = typeof v === "string" && v !== "" ? +v : v
    if (!isWhole(n, r.min, r.max)) throw new ConfigError(bad + wholeRange(r.min, r.max) + ", got " + (typeof v === "string" ? '"' + v + '"' : kindName(v)))
    return n as number
}

// A configuration not read from settings (the simulator's entry, which
// devs-iot sim generates): its whole numbers are checked against their rows
// too, as settingValue() checks them when read.
export function checkConfig(c: AppConfig): AppConfig {
    checkParsed(c)
    const ints: { [name: string]: number | undefined } = { IOT_PORT: c.port, IOT_TIMEOUT: c.timeout, IOT_INTERVAL: c.interval, IOT_WATCHDOG: c.watchdog, IOT_REPORT: c.report }
    const defs = boardSettingDefs()
    for (let i = 0; i < defs.length; i++) if (defs[i].kind === "int") settingValue(defs[i], ints[defs[i].name])
    return c
}

// What settingValue() cannot check one setting at a time.
function checkParsed(c: AppConfig): AppConfig {
    const p = checkClientId(c.id)
    if (p !== "") throw new ConfigError("setting IOT_ID: " + p)
    if (typeof c.host !== "string" || c.host === "") throw new ConfigError("setting IOT_HOST is missing: set it to the server's address in .env.local")
    const servers = parseServers(c.host, c.port)
    if (servers.problem !== "") throw new ConfigError("setting IOT_HOST: " + servers.problem)
    const k = c.key || ""
    if (k !== "" && !isHex(k, 64)) throw new ConfigError("setting IOT_KEY must be 64 lowercase hex digits (32 bytes), e.g. from devs-iot keygen")
    if (c.encrypt && k === "") throw new ConfigError("setting IOT_ENCRYPT needs IOT_KEY")
    return c
}

// A key given to an image built without authentication (keyed.ts): at
// start (checkKeys), or to a Client. One text, so the image holds it once
// (the compiler folds a constant into each message made from it).
export const NO_KEYS = "setting IOT_KEY: this firmware image is built without authentication: build it with IOT_KEY set (npm run build), or deploy src/main*.ts"

// Throws when the settings hold a key the image cannot use.
export function checkKeys(c: AppConfig, hasKeys: boolean): void {
    if (c.key && !hasKeys) throw new ConfigError(NO_KEYS)
}

export interface BoardSettings {
    config: AppConfig
    role: string
}

// The configuration from raw setting values (name -> value as read, absent
// ones undefined); `deviceId` stands in for a missing IOT_ID.
export function parseSettings(raw: { [name: string]: unknown }, deviceId: string): BoardSettings {
    const v: { [name: string]: string | number } = {}
    const defs = boardSettingDefs()
    for (let i = 0; i < defs.length; i++) v[defs[i].name] = settingValue(defs[i], raw[defs[i].name])
    const role = v["IOT_ROLE"] as string
    if (role !== "" && role !== "button" && role !== "led") throw new ConfigError('setting IOT_ROLE must be "button", "led" or absent, got "' + role + '"')
    const id = v["IOT_ID"] as string
    const c: AppConfig = {
        id: id || deviceId,
        host: v["IOT_HOST"] as string,
        port: v["IOT_PORT"] as number,
        timeout: v["IOT_TIMEOUT"] as number,
        interval: v["IOT_INTERVAL"] as number,
        watchdog: v["IOT_WATCHDOG"] as number,
        verbose: v["IOT_VERBOSE"] === 1,
        sim: false,
        key: v["IOT_KEY"] as string,
        encrypt: v["IOT_ENCRYPT"] === 1,
        report: v["IOT_REPORT"] as number,
        firmware: v["IOT_FIRMWARE"] as string,
    }
    return { config: checkParsed(c), role: role }
}

// The board's configuration, from its settings.
export async function boardSettings(): Promise<BoardSettings> {
    const raw: { [name: string]: unknown } = {}
    const defs = boardSettingDefs()
    for (let i = 0; i < defs.length; i++) raw[defs[i].name] = await readSetting(defs[i].name)
    return parseSettings(raw, ds.deviceIdentifier("self"))
}
