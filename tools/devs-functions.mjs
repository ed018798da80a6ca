#!/usr/bin/env node
// Bytecode per function and per file of the image built last, from the
// compiler's debug output (.devicescript/bin/bytecode-dbg.json, which each
// `devs build` rewrites): for finding what to cut. Build the image first,
// e.g. `node tools/build-devs.mjs demo --force`, then
//   node tools/devs-functions.mjs [files|functions] [path prefix]
// (default: functions of src/, largest first, with file:line). A method
// also costs about 11 bytes in the image's `prototype` function (app bytes
// in build/devs/sizes.json).
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const [mode = "functions", prefix = "src/"] = process.argv.slice(2)
const dbg = JSON.parse(readFileSync(join(root, ".devicescript/bin/bytecode-dbg.json"), "utf8"))
const starts = []
let off = 0
for (const s of dbg.sources) {
    starts.push([off, s.path])
    off += s.length
}
const texts = {}
function lineOf(path, pos) {
    try {
        texts[path] ??= readFileSync(join(root, path), "utf8")
    } catch {
        return 0
    }
    return texts[path].slice(0, pos).split("\n").length
}
const rows = []
for (const fn of dbg.functions) {
    const pos = fn.location ? fn.location[0] : -1
    let file = ""
    let at = 0
    for (const [o, p] of starts)
        if (o <= pos) {
            file = p
            at = o
        }
    if (file.startsWith(prefix)) rows.push({ name: fn.name, file, line: pos >= 0 ? lineOf(file, pos - at) : 0, size: fn.size })
}
if (mode === "files") {
    const by = {}
    for (const r of rows) {
        by[r.file] ??= { size: 0, n: 0 }
        by[r.file].size += r.size
        by[r.file].n++
    }
    for (const [f, t] of Object.entries(by).sort((a, b) => b[1].size - a[1].size)) console.log(`${String(t.size).padStart(6)} ${String(t.n).padStart(4)}  ${f}`)
} else for (const r of rows.sort((a, b) => b.size - a.size)) console.log(`${String(r.size).padStart(6)}  ${r.file}:${r.line} ${r.name}`)
console.log(`${String(rows.reduce((a, r) => a + r.size, 0)).padStart(6)}  in all (${rows.length} functions)`)
