// The fuzz loop: generate or mutate an input from its own seed, check it
// against the target's oracle, shrink what fails. Input k of a run with seed S
// has seed S + k, so `--seed X --count 1` replays exactly the input of seed X.

import { Rng } from "./gen.js"

export class Finding extends Error {}

// Oracles throw Finding; anything else thrown by the code under test is a
// finding too ("threw").
export function must(cond: boolean, what: string): void {
    if (!cond) throw new Finding(what)
}

export interface Target<I> {
    name: string
    what: string // the oracle, one line
    gen(r: Rng): I
    check(input: I): void // throws on a finding
    shrink(input: I, fails: (x: I) => boolean): I
    show(input: I): string // the reproducing input, hex inside
}

export interface FindingReport {
    target: string
    seed: number
    message: string
    input: string // minimal reproducing input
    replay: string
}

export interface TargetResult {
    target: string
    inputs: number
    ms: number
    perSecond: number
    findings: number
    reports: FindingReport[]
}

export function failure<I>(t: Target<I>, input: I): string | undefined {
    try {
        t.check(input)
        return undefined
    } catch (e) {
        if (e instanceof Finding) return e.message
        const err = e as Error
        return "threw " + (err && err.name) + ": " + (err && err.message) + (err && err.stack ? " @ " + err.stack.split("\n").slice(1, 3).join(" ").trim() : "")
    }
}

// A finding's class, to shrink each kind only once: its message without
// quoted values, hex and numbers.
function kind(msg: string): string {
    return msg.replace(/"(?:[^"\\]|\\.)*"|'[^']*'/g, "S").replace(/[0-9a-f]{2,}|\d+/g, "#").slice(0, 80)
}

export function runTarget<I>(t: Target<I>, seed: number, count: number, maxReports = 3): TargetResult {
    const start = Date.now()
    let findings = 0
    const reports: FindingReport[] = []
    const kinds = new Set<string>()
    for (let k = 0; k < count; k++) {
        const s = (seed + k) >>> 0
        const input = t.gen(new Rng(s))
        const msg = failure(t, input)
        if (msg === undefined) continue
        findings++
        if (reports.length >= maxReports || kinds.has(kind(msg))) continue
        kinds.add(kind(msg))
        const k0 = kind(msg)
        const small = t.shrink(input, (x) => {
            const m = failure(t, x)
            return m !== undefined && kind(m) === k0
        })
        reports.push({
            target: t.name,
            seed: s,
            message: failure(t, small) ?? msg,
            input: t.show(small),
            replay: "npm run fuzz -- --target " + t.name + " --seed " + s + " --count 1",
        })
    }
    const ms = Math.max(1, Date.now() - start)
    return { target: t.name, inputs: count, ms: ms, perSecond: Math.round((count * 1000) / ms), findings: findings, reports: reports }
}

// Drops elements of a list while `fails` holds (halves down to single ones).
export function shrinkList<T>(xs: T[], fails: (x: T[]) => boolean, budget: number): T[] {
    let cur = xs
    let checks = 0
    for (let size = Math.max(1, cur.length >> 1); ; size = size >> 1) {
        let i = 0
        while (i < cur.length && checks < budget) {
            const cand = cur.slice(0, i).concat(cur.slice(i + size))
            checks++
            if (fails(cand)) cur = cand
            else i += size
        }
        if (size <= 1) break
    }
    return cur
}
