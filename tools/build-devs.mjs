#!/usr/bin/env node
// Compiles each DeviceScript entry with `devs build`, one after another (the
// compiler rewrites .devicescript/bin and node_modules/@devicescript on every
// build, so parallel builds in one folder race), and keeps each image as
// build/devs/<name>.devs with its size report.
import { execFileSync } from "node:child_process"
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const cli = createRequire(import.meta.url).resolve("@devicescript/cli/built/devicescript-cli.cjs")
const ENTRIES = {
    "shared-tests": "test/vm/main.ts",
    // Board firmware, one image per demo (flash with the board in boards/).
    demo: "src/main.ts",
    remote: "src/main-remote.ts",
    qos: "src/main-qos.ts",
    "qos-fast": "src/main-qos-fast.ts",
}

const only = process.argv.slice(2)
const out = join(root, "build", "devs")
mkdirSync(out, { recursive: true })
const sizes = {}
for (const [name, entry] of Object.entries(ENTRIES)) {
    if (only.length && !only.includes(name)) continue
    try {
        execFileSync(process.execPath, [cli, "build", "--quiet", entry], {
            cwd: root,
            env: { ...process.env, NO_UPDATE_NOTIFIER: "1" },
            stdio: ["ignore", "pipe", "pipe"],
        })
    } catch (e) {
        process.stderr.write(`devs build ${entry} failed:\n${e.stdout}${e.stderr}\n`)
        process.exit(1)
    }
    copyFileSync(join(root, ".devicescript/bin/bytecode.devs"), join(out, `${name}.devs`))
    copyFileSync(join(root, ".devicescript/bin/bytecode-sizes.md"), join(out, `${name}.sizes.md`))
    sizes[name] = { total: readFileSync(join(out, `${name}.devs`)).length, ...functionBytes(join(root, ".devicescript/bin/bytecode-dbg.json")) }
}
writeFileSync(join(out, "sizes.json"), JSON.stringify(sizes, null, 2) + "\n")
for (const [n, s] of Object.entries(sizes))
    console.log(`devs: ${n} ${s.total} bytes (functions: devs-iot client ${s.client}, app ${s.app}, DeviceScript libraries ${s.libraries}; data ${s.data})`)

// Bytes of compiled functions by the part of the source they come from: the
// devs-iot client (src/shared, src/device outside apps/), the app (entries,
// src/device/apps, tests), and DeviceScript's own libraries; plus data
// (strings, floats, header).
function functionBytes(dbgPath) {
    const dbg = JSON.parse(readFileSync(dbgPath, "utf8"))
    const starts = []
    let off = 0
    for (const s of dbg.sources) {
        starts.push([off, s.path])
        off += s.length
    }
    const fileAt = (pos) => {
        let f = ""
        for (const [o, p] of starts) if (o <= pos) f = p
        return f
    }
    const r = { client: 0, app: 0, libraries: 0, data: 0 }
    for (const fn of dbg.functions) {
        const f = fileAt(fn.location ? fn.location[0] : -1)
        if (f.startsWith("node_modules/")) r.libraries += fn.size
        else if ((f.startsWith("src/shared/") && !f.endsWith("qoscheck.ts")) || (f.startsWith("src/device/") && !f.startsWith("src/device/apps/"))) r.client += fn.size
        else r.app += fn.size
    }
    const total = readFileSync(join(dirname(dbgPath), "bytecode.devs")).length
    r.data = total - r.client - r.app - r.libraries
    return r
}
