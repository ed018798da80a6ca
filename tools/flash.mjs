#!/usr/bin/env node
// Flashes the DeviceScript runtime this firmware was tested with, not
// "latest". `devs flash` downloads <arch bare image> from
// .../releases/latest/download/ and keeps it 24 h in .devicescript/cache/
// under the same file name, then patches it with the board file. This puts
// the pinned release's image in that cache slot first, so `devs flash` uses
// it with its own patching. The pinned version is @devicescript/cli's in
// package.json (runtime and CLI are released together).
//   node tools/flash.mjs --board <id> [--print] [other devs flash options]
import { execFileSync } from "node:child_process"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
export const RUNTIME = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).devDependencies["@devicescript/cli"]
// The bare image `devs flash` fetches for each architecture (its arch table, CLI 2.16.4).
const BARE = {
    esp32: "microsoft/devicescript-esp32:devicescript-esp32-esp32_bare-0x1000.bin",
    esp32c3: "microsoft/devicescript-esp32:devicescript-esp32c3-esp32c3_bare-0x0.bin",
    esp32s2: "microsoft/devicescript-esp32:devicescript-esp32s2-esp32s2_bare-0x1000.bin",
    esp32s3: "microsoft/devicescript-esp32:devicescript-esp32s3-esp32s3_bare-0x0.bin",
    rp2040w: "microsoft/devicescript-pico:devicescript-rp2040w-pico_w.uf2",
}

// The pinned download for a board file in boards/.
export function pinned(board) {
    const json = JSON.parse(readFileSync(join(root, "boards", `${board}.board.json`), "utf8"))
    const b = BARE[json.archId]
    if (!b) throw new Error(`no pinned runtime image for arch ${json.archId}`)
    const [repo, file] = b.split(":")
    return {
        arch: json.archId,
        url: `https://github.com/${repo}/releases/download/v${RUNTIME}/${file}`,
        cache: join(root, ".devicescript", "cache", file),
    }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
    const args = process.argv.slice(2)
    const i = args.indexOf("--board")
    if (i < 0 || !args[i + 1]) {
        console.error("usage: node tools/flash.mjs --board <id from boards/> [--print] [devs flash options]")
        process.exit(2)
    }
    const board = args[i + 1]
    const p = pinned(board)
    if (args.includes("--print")) {
        console.log(`runtime ${RUNTIME} for ${board} (${p.arch}): ${p.url} -> ${p.cache}`)
        process.exit(0)
    }
    console.log(`fetching runtime ${RUNTIME}: ${p.url}`)
    const r = await fetch(p.url)
    if (r.status !== 200) {
        console.error(`cannot fetch ${p.url}: ${r.status} ${r.statusText}`)
        process.exit(1)
    }
    mkdirSync(dirname(p.cache), { recursive: true })
    writeFileSync(p.cache, Buffer.from(await r.arrayBuffer()))
    const cli = createRequire(import.meta.url).resolve("@devicescript/cli/built/devicescript-cli.cjs")
    const rest = args.filter((a) => a !== "--refresh" && a !== "-r")
    execFileSync(process.execPath, [cli, "flash", ...rest], { cwd: root, stdio: "inherit" })
}
