// A test harness both runtimes accept: cases are listed as data, then run by
// mocha on Node (test/node/shared.test.ts) and by a loop in the DeviceScript
// VM (test/vm/main.ts). Written in the DeviceScript subset, like src/shared.

import { show } from "../../src/shared/config.js"
import type { Crypto } from "../../src/shared/crypto.js"

export type CaseFn = () => Promise<void>

export interface Case {
    name: string
    fn: CaseFn
}

export interface Suite {
    name: string
    cases: Case[]
}

export function suite(name: string, define: (test: (name: string, fn: CaseFn) => void) => void): Suite {
    const s: Suite = { name: name, cases: [] }
    define(function (n: string, fn: CaseFn) {
        s.cases.push({ name: n, fn: fn })
    })
    return s
}

// Long simulations yield now and then: the VM kills a fiber that runs ~128K
// opcodes without yielding. The VM entry installs ds.sleep(0).
// Each runner also installs its platform's crypto (node:crypto, or the
// board's native primitives): the auth cases run on both.
export const hooks = {
    pause: async function (): Promise<void> {},
    crypto: undefined as Crypto | undefined,
}

export function crypto(): Crypto {
    if (hooks.crypto === undefined) throw new AssertionFailed("no crypto installed by the runner")
    return hooks.crypto
}

export class AssertionFailed extends Error {
    constructor(message: string) {
        super(message)
        this.name = "AssertionFailed"
    }
}

export function ok(cond: boolean, what: string): void {
    if (!cond) throw new AssertionFailed(what)
}

export function eq(actual: unknown, expected: unknown, what: string): void {
    if (actual !== expected) throw new AssertionFailed(what + ": expected " + show(expected) + ", got " + show(actual))
}

export function eqList(actual: unknown[], expected: unknown[], what: string): void {
    if (actual.length !== expected.length)
        throw new AssertionFailed(what + ": expected " + expected.length + " items, got " + actual.length + " [" + render(actual) + "]")
    for (let i = 0; i < actual.length; i++)
        if (actual[i] !== expected[i])
            throw new AssertionFailed(what + ": item " + i + " expected " + show(expected[i]) + ", got " + show(actual[i]))
}

export function throwsCode(fn: () => void, code: string, what: string): void {
    let caught: unknown = undefined
    let threw = false
    try {
        fn()
    } catch (e) {
        threw = true
        caught = e
    }
    if (!threw) throw new AssertionFailed(what + ": expected error " + code + ", nothing thrown")
    const c = (caught as { code?: unknown }).code
    if (c !== code) throw new AssertionFailed(what + ": expected error " + code + ", got " + show(c))
}

export function render(xs: unknown[]): string {
    const out: string[] = []
    for (let i = 0; i < xs.length && i < 12; i++) out.push(show(xs[i]))
    if (xs.length > 12) out.push("...")
    return out.join(", ")
}

// Park-Miller by Schrage's method: every intermediate stays below 2^31,
// because DeviceScript's % is wrong for operands above 2^31.
export class Rng {
    private s: number
    constructor(seed: number) {
        this.s = (seed % 2147483646) + 1
    }
    next(): number {
        const hi = Math.floor(this.s / 127773)
        const lo = this.s - hi * 127773
        let t = 16807 * lo - 2836 * hi
        if (t <= 0) t += 2147483647
        this.s = t
        return (t - 1) / 2147483646
    }
    int(n: number): number {
        return Math.floor(this.next() * n)
    }
    chance(pct: number): boolean {
        return this.int(100) < pct
    }
}

export function bytes(s: string): Buffer {
    return Buffer.from(s)
}

export function text(b: Buffer | undefined): string {
    return b === undefined ? "<none>" : b.toString("utf-8")
}
