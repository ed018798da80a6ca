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
    sizes[name] = readFileSync(join(out, `${name}.devs`)).length
}
writeFileSync(join(out, "sizes.json"), JSON.stringify(sizes, null, 2) + "\n")
for (const [n, s] of Object.entries(sizes)) console.log(`devs: ${n} ${s} bytes`)
