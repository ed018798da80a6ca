// The docs stay true to the code and the repository stands alone: the
// settings table is what tools/settings-doc.mjs generates from the code,
// every relative link resolves inside the repository, every protocol section
// the code cites exists, docs/api.md lists the package's exports,
// docs/architecture.md names every source file, and no text names a tracker's
// issue number.
import assert from "node:assert/strict"
import { execFileSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..")
const SKIP = new Set(["node_modules", "dist", "build", ".devicescript", ".git", "results"])

function files(dir: string, keep: (p: string) => boolean): string[] {
    const out: string[] = []
    for (const name of readdirSync(dir)) {
        if (SKIP.has(name)) continue
        const p = join(dir, name)
        if (statSync(p).isDirectory()) out.push(...files(p, keep))
        else if (keep(p)) out.push(p)
    }
    return out
}

const docs = () => [join(ROOT, "README.md"), ...files(join(ROOT, "docs"), (p) => p.endsWith(".md"))]
const slug = (h: string) => h.trim().toLowerCase().replace(/[^\w\- ]/g, "").replace(/ /g, "-")

describe("docs", function () {
    it("the settings table in docs/settings.md is the one tools/settings-doc.mjs generates from the code", function () {
        this.timeout(30000)
        execFileSync(process.execPath, [join(ROOT, "tools/settings-doc.mjs"), "--check"], { cwd: ROOT, stdio: "pipe" })
    })

    it("every flag that takes a whole number shows its range in docs/settings.md", async function () {
        const { COMMANDS } = await import("../../src/server/cli/main.js")
        const numeric = new Set<string>()
        for (const [cmd, c] of Object.entries(COMMANDS))
            if (cmd !== "sim" && cmd !== "flash") for (const [flag, o] of Object.entries(c.options)) if (o.arg === "N" || o.arg === "MS") numeric.add(flag)
        const missing: string[] = []
        for (const row of readFileSync(join(ROOT, "docs/settings.md"), "utf8").split("\n").filter((l) => l.startsWith("| `"))) {
            const cells = row.split(" | ")
            const flags = [...(cells[3] ?? "").matchAll(/`--([a-z-]+)`/g)].map((m) => m[1]!)
            if (flags.some((f) => numeric.has(f)) && cells[2]!.trim() === "") missing.push(cells[0]!.slice(2))
        }
        assert.deepEqual(missing, [], "settings without a range")
    })

    it("every relative link in README.md and docs/ resolves inside the repository, anchors included", function () {
        const bad: string[] = []
        for (const file of docs()) {
            const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "")
            for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
                const link = m[1]!
                if (/^[a-z]+:/.test(link)) continue
                const [path, anchor] = link.split("#") as [string, string | undefined]
                const target = path === "" ? file : resolve(dirname(file), path)
                const where = `${relative(ROOT, file)}: ${link}`
                if (!target.startsWith(ROOT + "/") && target !== ROOT) bad.push(`${where} (outside the repository)`)
                else if (!existsSync(target)) bad.push(`${where} (no such file)`)
                else if (anchor !== undefined && target.endsWith(".md")) {
                    const heads = [...readFileSync(target, "utf8").matchAll(/^#+ (.*)$/gm)].map((h) => slug(h[1]!))
                    if (!heads.includes(anchor)) bad.push(`${where} (no heading #${anchor})`)
                }
            }
        }
        assert.deepEqual(bad, [])
    })

    it("every protocol section the code cites exists in docs/protocol.md", function () {
        const heads = new Set([...readFileSync(join(ROOT, "docs/protocol.md"), "utf8").matchAll(/^#+ (.*)$/gm)].map((h) => h[1]!.trim()))
        const bad: string[] = []
        let cited = 0
        for (const file of files(join(ROOT, "src"), (p) => p.endsWith(".ts"))) {
            const text = readFileSync(file, "utf8")
            if (/PROTOCOL\.md/.test(text)) bad.push(`${relative(ROOT, file)}: cites PROTOCOL.md, which is docs/protocol.md`)
            for (const m of text.matchAll(/docs\/protocol\.md[,:]\s*(?:\/\/\s*)?"([^"]+)"/g)) {
                cited++
                if (!heads.has(m[1]!)) bad.push(`${relative(ROOT, file)}: "${m[1]}"`)
            }
        }
        assert.deepEqual(bad, [])
        assert.ok(cited >= 5, `only ${cited} citations found: the pattern no longer matches the code`)
    })

    it("no file name or text names an issue number: things are named for what they are", function () {
        const pattern = new RegExp(["issue", "[ _-]?#?[0-9]+"].join(""), "i")
        const bad: string[] = []
        const all = files(ROOT, (p) => /\.(ts|js|mjs|md|json|txt|service|sh)$|Dockerfile$|\/run$/.test(p) && !p.endsWith("package-lock.json"))
        for (const file of all) {
            const rel = relative(ROOT, file)
            if (pattern.test(rel)) bad.push(`${rel} (file name)`)
            readFileSync(file, "utf8")
                .split("\n")
                .forEach((line, i) => {
                    if (pattern.test(line)) bad.push(`${rel}:${i + 1}: ${line.trim().slice(0, 100)}`)
                })
        }
        assert.deepEqual(bad, [])
    })

    it("docs/api.md's table of exports names every export of the package entry, and nothing else", function () {
        const entry = readFileSync(join(ROOT, "src/server/index.ts"), "utf8")
        const exported = new Set<string>()
        for (const m of entry.matchAll(/^export (?:type )?\{([^}]*)\}/gm))
            for (const part of m[1]!.split(",")) exported.add(part.trim().replace(/^type /, "").split(/ as /).pop()!.trim())
        const api = readFileSync(join(ROOT, "docs/api.md"), "utf8")
        const table = api.slice(api.indexOf("## Exports"), api.indexOf("\n## ", api.indexOf("## Exports") + 1))
        const documented = new Set<string>()
        for (const row of table.split("\n").filter((l) => l.startsWith("| `"))) for (const m of row.split(" | ")[0]!.matchAll(/`(\w+)`/g)) documented.add(m[1]!)
        assert.ok(exported.size > 10, "src/server/index.ts: no exports found")
        assert.deepEqual([...exported].filter((n) => !documented.has(n)), [], "exported, missing from docs/api.md")
        assert.deepEqual([...documented].filter((n) => !exported.has(n)), [], "in docs/api.md, not exported")
    })

    it("docs/architecture.md names every source file of src/shared, src/server and src/device", function () {
        const arch = readFileSync(join(ROOT, "docs/architecture.md"), "utf8")
        const sources = ["src/shared", "src/server", "src/device"].flatMap((d) => files(join(ROOT, d), (p) => p.endsWith(".ts") && !p.includes("dashboard")))
        assert.ok(sources.length > 50, "no sources found")
        const unnamed = sources.map((p) => relative(ROOT, p)).filter((rel) => !new RegExp(`\\b${rel.split("/").pop()!.replace(".", "\\.")}\\b`).test(arch))
        assert.deepEqual(unnamed, [])
    })

    it("the README is a user guide of at most about 20 KB", function () {
        const size = statSync(join(ROOT, "README.md")).size
        assert.ok(size <= 20 * 1024, `README.md is ${size} bytes: move detail to docs/`)
    })
})
