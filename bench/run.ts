// npm run bench [-- --quick] [--only latency,throughput,...] [--docs]
//
// Runs each benchmark section with the server and clients as separate
// processes on loopback, prints the tables, and writes the figures to
// results/bench/<date>.json (a quick or partial run to <date>-quick.json /
// <date>-partial.json, which git ignores). --docs puts the tables of a full
// run into docs/benchmarks.md. Every worker process is bounded in time and killed by
// pid at the end or at the run's deadline.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import type { Context, SectionResult } from "./lib/context.js"
import { machine, type Machine } from "./lib/machine.js"
import { stopAll } from "./lib/proc.js"
import { markdown } from "./lib/table.js"
import { board } from "./sections/board.js"
import { bounds } from "./sections/bounds.js"
import { footprint } from "./sections/footprint.js"
import { latency } from "./sections/latency.js"
import { recovery } from "./sections/recovery.js"
import { scale } from "./sections/scale.js"
import { state } from "./sections/state.js"
import { status } from "./sections/status.js"
import { storm } from "./sections/storm.js"
import { throughput } from "./sections/throughput.js"
import { v1peer } from "./sections/v1peer.js"
import { mqttGateway } from "./sections/mqtt.js"
import { mqttIdle } from "./sections/mqttidle.js"

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../..")
const SECTIONS: Record<string, (ctx: Context) => Promise<SectionResult>> = {
    latency,
    throughput,
    board,
    storm,
    scale,
    status,
    recovery,
    footprint,
    v1peer,
    bounds,
    state,
    mqtt: mqttGateway,
    mqttidle: mqttIdle,
}

interface Results {
    date: string
    quick: boolean
    sections: string[]
    machine: Machine
    seconds: number
    loadAfter: number[]
    figures: Record<string, unknown>
    errors: Record<string, string>
    tables: string
}

async function main(): Promise<number> {
    const { values } = parseArgs({
        options: { quick: { type: "boolean" }, only: { type: "string" }, docs: { type: "boolean" }, help: { type: "boolean" } },
        strict: true,
    })
    if (values.help) {
        console.log(`npm run bench [-- --quick] [--only ${Object.keys(SECTIONS).join(",")}] [--docs]`)
        return 0
    }
    const quick = values.quick ?? false
    const names = values.only ? values.only.split(",") : Object.keys(SECTIONS)
    for (const n of names) if (!SECTIONS[n]) throw new Error(`unknown section ${n}; one of ${Object.keys(SECTIONS).join(", ")}`)
    const partial = names.length < Object.keys(SECTIONS).length
    const deadline = setTimeout(() => {
        console.error(`bench: over the run's ${quick ? 2 : 30} min limit: stopping every worker`)
        stopAll()
        process.exit(1)
    }, (quick ? 2 : 30) * 60000)
    deadline.unref()
    const started = Date.now()
    const ctx: Context = { quick, log: (m) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${m}`) }
    const m = machine()
    ctx.log(`bench${quick ? " --quick" : ""} on ${m.nproc} x ${m.cpu}, Node ${m.node}, load ${m.loadBefore.join(" ")}`)
    const results: SectionResult[] = []
    const errors: Record<string, string> = {}
    for (const name of names) {
        ctx.log(`${name}...`)
        try {
            results.push(await SECTIONS[name]!(ctx))
        } catch (e) {
            errors[name] = (e as Error).stack ?? String(e)
            ctx.log(`${name} failed: ${errors[name]}`)
        } finally {
            stopAll()
        }
    }
    const tables = results.flatMap((r) => r.tables.map(markdown)).join("\n\n")
    const date = new Date(started).toISOString().slice(0, 10)
    const out: Results = {
        date,
        quick,
        sections: names,
        machine: m,
        seconds: Math.round((Date.now() - started) / 1000),
        loadAfter: (await import("node:os")).loadavg().map((x) => Math.round(x * 100) / 100),
        figures: Object.fromEntries(results.map((r) => [r.name, r.data])),
        errors,
        tables,
    }
    const dir = join(REPO, "results/bench")
    mkdirSync(dir, { recursive: true })
    const file = join(dir, `${date}${quick ? "-quick" : partial ? "-partial" : ""}.json`)
    writeFileSync(file, JSON.stringify(out, null, 2) + "\n")
    console.log(`\n${tables}\n\n${machineLine(m)}; ${out.seconds} s\n`)
    ctx.log(`figures written to ${file}`)
    if (values.docs) {
        if (quick || partial || Object.keys(errors).length > 0) ctx.log("--docs: only a complete full run goes into docs/benchmarks.md; not updated")
        else updateDocs(out)
    }
    return Object.keys(errors).length > 0 ? 1 : 0
}

function machineLine(m: Machine): string {
    return `Machine: nproc ${m.nproc}, CPU "${m.cpu}" (/proc/cpuinfo), ${m.memGB} GB RAM, Node ${m.node}, ${m.os}`
}

// Replaces what stands between the bench markers in docs/benchmarks.md.
function updateDocs(r: Results): void {
    const path = join(REPO, "docs/benchmarks.md")
    const text = readFileSync(path, "utf8")
    const begin = "<!-- bench:begin -->"
    const end = "<!-- bench:end -->"
    const a = text.indexOf(begin)
    const b = text.indexOf(end)
    if (a < 0 || b < a) throw new Error(`docs/benchmarks.md has no ${begin} ... ${end} markers`)
    const body = `\n${machineLine(r.machine)}. Run of ${r.date} (\`results/bench/${r.date}.json\`), ${r.seconds} s, load average ${r.machine.loadBefore[0]} before and ${r.loadAfter[0]} after.\n\n${r.tables}\n`
    writeFileSync(path, text.slice(0, a + begin.length) + body + text.slice(b))
}

process.on("SIGINT", () => {
    stopAll()
    process.exit(130)
})

main().then(
    (code) => {
        stopAll()
        process.exit(code)
    },
    (e) => {
        console.error(`bench: ${(e as Error).stack ?? e}`)
        stopAll()
        process.exit(1)
    }
)
