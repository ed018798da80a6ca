#!/usr/bin/env node
// npm runs `prepare` on a clone's `npm install` / `npm ci` and before `npm
// pack`. With the dev dependencies installed it builds everything (tsc and
// the DeviceScript images). Without them (`npm ci --omit=dev` in a clone)
// there is nothing to build with: it keeps the build already there, or says
// what to do. Installing the packed package runs no script at all.
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
let haveTsc = true
try {
    createRequire(join(root, "package.json")).resolve("typescript/package.json")
} catch {
    haveTsc = false
}
if (!haveTsc) {
    if (existsSync(join(root, "dist/src/server/cli/main.js"))) {
        console.error("devs-iot: no dev dependencies here (--omit=dev): keeping the build in dist/ and build/")
        process.exit(0)
    }
    console.error("devs-iot: nothing is built and the dev dependencies that build it are not installed: run `npm ci` (with dev dependencies) once, or install the packed package (npm pack)")
    process.exit(1)
}
const r = spawnSync(process.platform === "win32" ? "npm.cmd" : "npm", ["run", "build"], { cwd: root, stdio: "inherit" })
process.exit(r.status ?? 1)
