// The option keys each constructor takes. A key that is not one of them is
// refused like a bad value (ECONFIG, naming it, with the close one when there
// is one): from plain JS a misspelt option (`prot`, `expect`, `limits: {
// maxclients }`) would otherwise be ignored and its default used in silence.
// Node only: the board's Client takes its options from its settings.
import { LinkError, type LinkOptions } from "../shared/index.js"
import { show } from "../shared/config.js"

// Every key of T's options, no more and no less (the compiler checks both).
export type OptionKeys<T> = { [K in keyof Required<T>]: true }

export const LINK_KEYS: OptionKeys<LinkOptions> = {
    timeout: true,
    maxLineBytes: true,
    window: true,
    maxInflightBytes: true,
    maxQueuedLines: true,
    maxQueuedBytes: true,
    maxReceivedLines: true,
    maxReceivedBytes: true,
    maxWriteBytes: true,
    warmup: true,
    onFull: true,
    maxBacklogBytes: true,
    keepaliveEvents: true,
    ackDelay: true,
    encrypt: true,
}

// Throws ECONFIG for options that are not an object, or for their first key
// not in `known`. `what`: the constructor ("new Server()"); `prefix`: where
// the keys sit in the options ("limits.").
export function checkOptionKeys(opts: unknown, known: object, what: string, prefix = ""): void {
    if (opts === undefined) return
    if (typeof opts !== "object" || opts === null || Array.isArray(opts))
        throw new LinkError("ECONFIG", `${prefix === "" ? "the options" : prefix.slice(0, -1)} of ${what} must be an object, got ${Array.isArray(opts) ? "an array" : show(opts)}`)
    for (const k of Object.keys(opts)) {
        if (Object.hasOwn(known, k)) continue
        const near = closest(k, Object.keys(known))
        throw new LinkError("ECONFIG", `${prefix}${k} is not an option of ${what}${near === undefined ? "" : ` (did you mean ${prefix}${near}?)`}`)
    }
}

// The known key `k` is most likely a slip of: the same but for case, or at
// most two edits away (a transposition is one) and not half of it changed.
export function closest(k: string, known: string[]): string | undefined {
    const lower = k.toLowerCase()
    const same = known.find((n) => n.toLowerCase() === lower)
    if (same !== undefined) return same
    let best: string | undefined = undefined
    let bestD = Infinity
    for (const n of known) {
        const d = distance(lower, n.toLowerCase())
        if (d < bestD) {
            best = n
            bestD = d
        }
    }
    return bestD <= 2 && bestD * 2 < k.length ? best : undefined
}

// Edits from a to b: insert, delete, substitute, or swap two neighbours.
function distance(a: string, b: string): number {
    const d: number[][] = []
    for (let i = 0; i <= a.length; i++) d.push([i, ...new Array<number>(b.length).fill(0)])
    for (let j = 0; j <= b.length; j++) d[0]![j] = j
    for (let i = 1; i <= a.length; i++)
        for (let j = 1; j <= b.length; j++) {
            const cost = a[i - 1] === b[j - 1] ? 0 : 1
            let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
            if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
            d[i]![j] = v
        }
    return d[a.length]![b.length]!
}
