// The layers of docs/architecture.md, checked on the sources: the core
// imports only itself, the shells import the core and not each other, only
// the CLI names the apps, and no module imports itself round a circle (type
// imports included: DeviceScript compiles the modules they name).
import assert from "node:assert/strict"
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join, normalize, relative } from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..")

function sources(dir: string): string[] {
    return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []
    )
}

// file -> the files of this repository it imports (relative imports only).
function imports(): Map<string, string[]> {
    const graph = new Map<string, string[]>()
    for (const f of sources("src")) {
        const text = readFileSync(join(ROOT, f), "utf8")
        const deps = [...text.matchAll(/^(?:import|export)\b[^"';]*?from\s*"(\.{1,2}\/[^"]+)"/gm)].map((m) =>
            normalize(join(dirname(f), m[1]!)).replace(/\.js$/, ".ts")
        )
        graph.set(f, deps)
    }
    return graph
}

const layer = (f: string) => f.split("/")[1]!

describe("source tree", function () {
    const graph = imports()

    it("each layer imports only what lies below it: shared itself; server and device the core; only the CLI names the apps", function () {
        const allowed: Record<string, string[]> = { shared: ["shared"], device: ["shared", "device"], server: ["shared", "server"], apps: ["shared", "device", "server", "apps"] }
        const bad: string[] = []
        for (const [f, deps] of graph) {
            const from = layer(f)
            if (!(from in allowed)) continue // the board entries src/main*.ts
            for (const d of deps) {
                const to = layer(d)
                if (allowed[from]!.includes(to)) continue
                if (f === "src/server/cli/main.ts" && d === "src/apps/server.ts") continue
                bad.push(`${f} -> ${d}`)
            }
        }
        assert.deepEqual(bad, [])
    })

    it("no import circle", function () {
        const circles: string[] = []
        const state = new Map<string, "open" | "done">()
        const path: string[] = []
        const visit = (f: string) => {
            state.set(f, "open")
            path.push(f)
            for (const d of graph.get(f) ?? []) {
                if (!graph.has(d)) continue
                if (state.get(d) === "open") circles.push(path.slice(path.indexOf(d)).concat(d).map((p) => relative("src", p)).join(" -> "))
                else if (!state.has(d)) visit(d)
            }
            path.pop()
            state.set(f, "done")
        }
        for (const f of graph.keys()) if (!state.has(f)) visit(f)
        assert.deepEqual(circles, [])
    })
})
