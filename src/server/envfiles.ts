// The board's settings files, .env.defaults and .env.local, as DeviceScript
// reads them, and the check that every setting line reaches the board as
// written. One implementation for both users: `devs-iot flash` (also with
// --dry-run) checks the files it is about to bundle against parseEnvFiles(),
// and `npm run build` (tools/build-devs.mjs, through tools/env-check.mjs)
// against what DeviceScript's own parser made of them during a real `devs
// build` (recorded by tools/devs-settings-hook.cjs).
//
// That parser (parseToSettings and stringToSettingValue in the pinned
// @devicescript/cli) drops every line in which "#" appears anywhere (so a
// comment must be a line of its own), cuts the name at "=" keeping spaces,
// keeps trailing spaces in the value, and turns a value that reads as JSON
// into that JSON value. The way around each: see the messages below.
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"

// Later files win for a name in both.
export const SETTINGS_FILES = [".env.defaults", ".env.local"] as const

// NAME -> the JSON text of the value the board gets, or null (no value).
export type ParsedSettings = Record<string, string | null>

// Settings the runtime itself consumes as text (WiFi credentials are sent to
// the Wifi service as strings).
const TEXT = ["WIFI_SSID", "WIFI_PWD"]
const MAX_NAME = 13 // readSetting() refuses longer names (the parser allows 14)

// What DeviceScript's parser makes of one file's text.
export function parseEnvText(text: string): ParsedSettings {
    const out: ParsedSettings = {}
    for (const line of text.split(/\r?\n/)) {
        if (line.includes("#")) continue
        const m = /(?<key>[^=]+)\s*=(?<value>[^#]*)#?/.exec(line)
        if (!m) continue
        const key = m.groups!["key"]!
        const value = m.groups!["value"]!
        delete out[key]
        if (value.length === 0) {
            out[key] = null
            continue
        }
        let v: unknown
        try {
            v = JSON.parse(value)
        } catch {
            v = undefined
        }
        out[key] = JSON.stringify(v ?? value)
    }
    return out
}

// What DeviceScript's parser makes of the settings files in `dir`, together.
export function parseEnvFiles(dir: string): ParsedSettings {
    const out: ParsedSettings = {}
    for (const file of SETTINGS_FILES) {
        const path = join(dir, file)
        if (existsSync(path)) Object.assign(out, parseEnvText(readFileSync(path, "utf8")))
    }
    return out
}

// The settings files that exist in `dir`, as paths.
export function envFiles(dir: string): string[] {
    return SETTINGS_FILES.map((f) => join(dir, f)).filter((p) => existsSync(p))
}

// One problem per line of the settings files in `dir` that does not arrive
// as written, each naming the file and line. `parsed`: what the parser made
// of the files (default: parseEnvFiles(dir), the same parser's rules).
export function checkEnvFiles(dir: string, parsed: ParsedSettings = parseEnvFiles(dir)): string[] {
    const problems: string[] = []
    // .env.local wins over .env.defaults for a name in both: check each file
    // on its own against what the parser made of both together.
    for (const file of SETTINGS_FILES) {
        const path = join(dir, file)
        if (!existsSync(path)) continue
        const lines = readFileSync(path, "utf8").split(/\r?\n/)
        lines.forEach((line, i) => {
            const where = `${file} line ${i + 1}`
            const t = line.trim()
            if (t === "" || t.startsWith("#")) return
            const eq = line.indexOf("=")
            if (eq < 0) {
                problems.push(`${where}: "${line}" has no "=": it is not a setting`)
                return
            }
            const name = line.slice(0, eq)
            const value = line.slice(eq + 1)
            if (line.includes("#")) {
                const fix = /^\s*[A-Za-z_][A-Za-z0-9_]*\s*$/.test(name) ? ` Write the value as a JSON string with \\u0023 for each "#": ${name.trim()}=${JSON.stringify(value.trim()).replace(/#/g, "\\u0023")}` : ""
                problems.push(`${where}: DeviceScript's .env parser drops every line that contains "#", so ${name.trim()} never reaches the board. Put comments on lines of their own.${fix}`)
                return
            }
            if (name !== name.trim()) {
                problems.push(`${where}: spaces around the name ("${name}"): the parser keeps them, so the board never sees ${name.trim()}. Write ${name.trim()}=...`)
                return
            }
            if (name.length > MAX_NAME) {
                problems.push(`${where}: the name ${name} is longer than ${MAX_NAME} characters: the board cannot read it`)
                return
            }
            if (value === "") {
                problems.push(`${where}: ${name} has no value: it arrives empty. Remove the line to use the default`)
                return
            }
            if (value !== value.trimEnd() || value !== value.trimStart()) {
                problems.push(`${where}: ${name} has spaces at the start or end of its value: the parser keeps them. Remove them`)
                return
            }
            if (!(name in parsed)) {
                problems.push(`${where}: ${name} did not reach DeviceScript's settings`)
                return
            }
            if (file === ".env.defaults" && localDefines(dir, name)) return // overridden
            const got = parsed[name]
            let v: unknown
            try {
                v = JSON.parse(got as string)
            } catch {
                v = undefined
            }
            if (TEXT.includes(name) && typeof v !== "string")
                problems.push(`${where}: ${name} arrives as ${v === null ? "null" : typeof v}, not text. Write it as a JSON string: ${name}=${JSON.stringify(value)}`)
        })
    }
    return problems
}

function localDefines(dir: string, name: string): boolean {
    const path = join(dir, ".env.local")
    if (!existsSync(path)) return false
    return readFileSync(path, "utf8")
        .split(/\r?\n/)
        .some((l) => l.startsWith(name + "="))
}
