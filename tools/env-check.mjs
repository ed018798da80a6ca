// Checks that every setting line in .env.defaults / .env.local reaches the
// board as written, against what DeviceScript's own parser made of the files
// (recorded by tools/devs-settings-hook.cjs during a real `devs build`).
// That parser drops every line in which "#" appears anywhere (so a comment
// must be a line of its own), cuts the name at "=" keeping spaces, keeps
// trailing spaces in the value, and turns a value that reads as JSON into
// that JSON value. The way around each: see the messages below.
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"

// Settings the runtime itself consumes as text (WiFi credentials are sent to
// the Wifi service as strings).
const TEXT = ["WIFI_SSID", "WIFI_PWD"]
const MAX_NAME = 13 // readSetting() refuses longer names (the parser allows 14)

// `parsed`: { NAME: JSON text | null } from the hook. Returns one problem per
// line that does not arrive as written, each naming the file and line.
export function checkEnvFiles(root, parsed) {
    const problems = []
    // .env.local wins over .env.defaults for a name in both: check each file
    // on its own against what the parser made of both together.
    for (const file of [".env.defaults", ".env.local"]) {
        const path = join(root, file)
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
            if (file === ".env.defaults" && localDefines(root, name)) return // overridden
            const got = parsed[name]
            let v
            try {
                v = JSON.parse(got)
            } catch {
                v = undefined
            }
            if (TEXT.includes(name) && typeof v !== "string")
                problems.push(`${where}: ${name} arrives as ${v === null ? "null" : typeof v}, not text. Write it as a JSON string: ${name}=${JSON.stringify(value)}`)
        })
    }
    return problems
}

function localDefines(root, name) {
    const path = join(root, ".env.local")
    if (!existsSync(path)) return false
    return readFileSync(path, "utf8")
        .split(/\r?\n/)
        .some((l) => l.startsWith(name + "="))
}
