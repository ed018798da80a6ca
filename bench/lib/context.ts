// What every benchmark section gets, and what it gives back.
import type { Table } from "./table.js"

export interface Context {
    quick: boolean
    log(msg: string): void
}

export interface SectionResult {
    name: string
    data: unknown // raw figures, for the results file
    tables: Table[]
}

export function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms))
}

// Rejects with `what` when `p` has not settled within `ms`.
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let t: NodeJS.Timeout
    const limit = new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
    })
    return Promise.race([p, limit]).finally(() => clearTimeout(t))
}
