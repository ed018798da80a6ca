// npm run fuzz [-- --quick] [--seed N] [--target a,b] [--count N] [--out file]
//
// Fuzzes the protocol core (src/shared) with generated and mutated inputs,
// each target against its own oracle (see docs/testing.md, "Fuzzing"). Prints a table
// per target and writes a JSON result; exits 1 on findings.

import { mkdirSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import { runTarget, Target, TargetResult } from "./engine.js"
import { codecTarget, dedupTarget, framerTarget, helloTarget, idlineTarget } from "./targets.js"
import { linkTarget } from "./link.js"

// Inputs per target in a full run (at least 1,000,000 in total).
export const FULL: { target: Target<any>; count: number; quick?: number }[] = [
    { target: framerTarget, count: 400000 },
    { target: codecTarget, count: 300000 },
    { target: dedupTarget, count: 20000 },
    { target: idlineTarget, count: 200000 },
    { target: helloTarget, count: 200000 },
    { target: linkTarget, count: 200000, quick: 5000 },
]
const QUICK_DIVISOR = 20

export interface FuzzOptions {
    seed: number
    targets?: string[]
    count?: number
    divisor?: number
}

export function runFuzz(o: FuzzOptions, log: (s: string) => void = () => {}): TargetResult[] {
    const out: TargetResult[] = []
    for (const t of FULL) {
        if (o.targets && o.targets.indexOf(t.target.name) < 0) continue
        const d = o.divisor ?? 1
        const n = o.count ?? (d === QUICK_DIVISOR && t.quick ? t.quick : Math.max(1, Math.floor(t.count / d)))
        const r = runTarget(t.target, o.seed, n)
        log(row(r))
        out.push(r)
    }
    return out
}

function pad(s: string, n: number, left = false): string {
    return left ? s.padStart(n) : s.padEnd(n)
}

function row(r: TargetResult): string {
    return pad(r.target, 8) + pad("" + r.inputs, 10, true) + pad("" + r.perSecond, 12, true) + pad((r.ms / 1000).toFixed(1), 9, true) + pad("" + r.findings, 10, true)
}

function main(argv: string[]): number {
    // write() refusing a full queue throws often: keep stack capture cheap
    Error.stackTraceLimit = 4
    let quick = false
    let seed = (Date.now() * 7919) >>> 0
    let targets: string[] | undefined = undefined
    let count: number | undefined = undefined
    let outFile: string | undefined = undefined
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i]
        const v = () => {
            if (i + 1 >= argv.length) throw new Error(a + " needs a value")
            return argv[++i]
        }
        if (a === "--quick") quick = true
        else if (a === "--seed") seed = +v() >>> 0
        else if (a === "--target") targets = v().split(",")
        else if (a === "--count") count = Math.max(1, Math.floor(+v()))
        else if (a === "--out") outFile = v()
        else {
            console.error("fuzz: unknown argument " + a + "\nusage: npm run fuzz -- [--quick] [--seed N] [--target " + FULL.map((t) => t.target.name).join(",") + "] [--count N] [--out file]")
            return 2
        }
    }
    if (targets) for (const t of targets) if (!FULL.some((f) => f.target.name === t)) {
        console.error("fuzz: no target " + t)
        return 2
    }
    console.log("fuzz: seed " + seed + (quick ? " (quick)" : "") + (targets ? ", targets " + targets.join(",") : "") + (count ? ", " + count + " inputs each" : ""))
    console.log(pad("target", 8) + pad("inputs", 10, true) + pad("inputs/s", 12, true) + pad("s", 9, true) + pad("findings", 10, true))
    const start = Date.now()
    const results = runFuzz({ seed: seed, targets: targets, count: count, divisor: quick ? QUICK_DIVISOR : 1 }, (s) => console.log(s))
    const total = results.reduce((a, r) => a + r.inputs, 0)
    const findings = results.reduce((a, r) => a + r.findings, 0)
    const ms = Date.now() - start
    console.log(pad("total", 8) + pad("" + total, 10, true) + pad("" + Math.round((total * 1000) / ms), 12, true) + pad((ms / 1000).toFixed(1), 9, true) + pad("" + findings, 10, true))
    for (const r of results)
        for (const f of r.reports) {
            console.log("\nFINDING " + f.target + " seed " + f.seed + ": " + f.message)
            console.log("  minimal input: " + f.input)
            console.log("  replay: " + f.replay)
        }
    const partial = quick || targets !== undefined || count !== undefined
    const day = new Date().toISOString().slice(0, 10)
    const file = outFile ?? "results/fuzz/" + day + (quick ? "-quick" : partial ? "-partial" : "") + ".json"
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(
        file,
        JSON.stringify(
            { date: new Date().toISOString(), seed: seed, quick: quick, node: process.version, inputs: total, ms: ms, findings: findings, targets: results },
            null,
            2
        ) + "\n"
    )
    console.log("\nfuzz: " + total + " inputs, " + findings + " findings; results in " + file)
    return findings > 0 ? 1 : 0
}

if (process.argv[1] && /fuzz[\\/]main\.js$/.test(process.argv[1])) process.exitCode = main(process.argv.slice(2))
