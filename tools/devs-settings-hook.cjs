// Preloaded into DeviceScript's CLI (`node -r tools/devs-settings-hook.cjs
// devicescript-cli.cjs build ...`): records the settings the CLI's own
// compiler read from .env.defaults and .env.local -- what `devs deploy` and
// VS Code send to the board -- as JSON into the file named by
// DEVS_IOT_SETTINGS_OUT. It only observes: the CLI's code is untouched apart
// from one added assignment after its settings are read. Output:
// { "found": true, "settings": { NAME: <JSON text of the value> | null } }
// (null: the line had no value); { "found": false } when this CLI version
// has no such place (then nothing can be said about the settings).
"use strict"
const Module = require("node:module")
const fs = require("node:fs")

const out = process.env.DEVS_IOT_SETTINGS_OUT
const MARK = "const settings = this.readSettings();"
let found = false
const compile = Module.prototype._compile
Module.prototype._compile = function (content, filename) {
    if (out && /devicescript-cli\.cjs$/.test(filename) && content.includes(MARK)) {
        found = true
        content = content.split(MARK).join(MARK + " globalThis.__devsIotSettings = settings;")
    }
    return compile.call(this, content, filename)
}

if (out)
    process.on("exit", () => {
        const raw = globalThis.__devsIotSettings
        const settings = {}
        if (raw)
            for (const k of Object.keys(raw)) settings[k] = raw[k] === undefined ? null : Buffer.from(raw[k]).toString("utf8")
        fs.writeFileSync(out, JSON.stringify({ found, read: !!raw, settings }) + "\n")
    })
