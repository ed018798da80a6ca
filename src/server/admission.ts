// Who may hold an unauthenticated socket: one accepted whose link is not up
// yet (its id line not read, or its handshake not finished). Pure
// bookkeeping, no sockets or timers: the server asks, with `now`, and acts.
//
// - A global cap (`maxPending`) and a cap per source address
//   (`maxPendingPerSource`) on such sockets. Both default far above what
//   honest boards produce (the tests' 1,000-board storm comes from one
//   address), so they bound memory, not honest storms.
// - Offences (a bad id, no id in time, a line flood before the handshake,
//   a refused id) are counted per source. A source with `penaltyOffences` in
//   its current and previous window of `penaltyWindow` ms is penalized: its
//   cap drops to `penalizedPending`, and when the global cap is reached its
//   oldest unauthenticated socket is evicted to make room for a newcomer.
//   Honest boards commit no offence, so they never meet the low cap.
// - New client ids per source: a token bucket of `newIdBurst` ids refilled
//   at `newIdRate` a second, so a few addresses cannot fill the table of ids
//   in seconds.
import { TokenBucket } from "./budget.js"

export interface AdmissionLimits {
    maxPending: number
    maxPendingPerSource: number
    penaltyOffences: number
    penaltyWindow: number // ms
    penalizedPending: number
    newIdRate?: number // per second (unset: no limit)
    newIdBurst?: number
}

interface Source<T> {
    items: Set<T> // unauthenticated sockets, oldest first
    offences: number // in the current window
    previous: number // in the previous window
    windowAt: number
    ids: TokenBucket | undefined // new ids; made on the first one
}

type Admit<T> = { ok: true; evicted?: T; evictedFrom?: string } | { ok: false; reason: string }

export class Admission<T> {
    private sources = new Map<string, Source<T>>()
    private total = 0

    constructor(readonly limits: AdmissionLimits) {}

    // Unauthenticated sockets held now (all sources).
    get pending(): number {
        return this.total
    }

    pendingOf(source: string): number {
        return this.sources.get(source)?.items.size ?? 0
    }

    // Source addresses with state (pending sockets or recent offences).
    get tracked(): number {
        return this.sources.size
    }

    // A new socket from `source`: admitted (possibly by evicting a penalized
    // source's oldest socket, which the caller must close), or refused.
    add(source: string, item: T, now: number): Admit<T> {
        const s = this.source(source, now)
        const penalized = this.isPenalized(s)
        const cap = penalized ? this.limits.penalizedPending : this.limits.maxPendingPerSource
        if (s.items.size >= cap)
            return { ok: false, reason: `${s.items.size} unauthenticated connections from this address, the limit${penalized ? " for an address that misbehaved" : ""}` }
        let evicted: T | undefined
        let evictedFrom: string | undefined
        if (this.total >= this.limits.maxPending) {
            for (const [name, other] of this.sources) {
                if (other.items.size === 0 || !this.isPenalized(other, now)) continue
                evicted = other.items.values().next().value as T
                evictedFrom = name
                this.remove(name, evicted)
                break
            }
            if (evicted === undefined) return { ok: false, reason: `${this.total} unauthenticated connections in all, the limit` }
        }
        s.items.add(item)
        this.total++
        return evicted === undefined ? { ok: true } : { ok: true, evicted, evictedFrom }
    }

    // The socket's link came up, or it closed. Idempotent.
    remove(source: string, item: T): void {
        const s = this.sources.get(source)
        if (s && s.items.delete(item)) this.total--
    }

    // Counts an offence; true when it made the source penalized (log that once).
    offence(source: string, now: number): boolean {
        const s = this.source(source, now)
        const before = this.isPenalized(s)
        s.offences++
        return !before && this.isPenalized(s)
    }

    // May `source` create one more client id now? Takes it if so.
    newId(source: string, now: number): boolean {
        const { newIdRate, newIdBurst } = this.limits
        if (newIdRate === undefined || newIdBurst === undefined) return true
        const s = this.source(source, now)
        if (s.ids === undefined) s.ids = new TokenBucket(newIdRate, newIdBurst)
        return s.ids.take(now)
    }

    penalized(source: string, now: number): boolean {
        const s = this.sources.get(source)
        return s !== undefined && this.isPenalized(s, now)
    }

    // Forgets sources with nothing pending and no offence in two windows.
    sweep(now: number): void {
        for (const [name, s] of this.sources) {
            this.roll(s, now)
            const idsFull = s.ids === undefined || s.ids.level(now) >= s.ids.capacity
            if (s.items.size === 0 && s.offences === 0 && s.previous === 0 && idsFull) this.sources.delete(name)
        }
    }

    private source(name: string, now: number): Source<T> {
        let s = this.sources.get(name)
        if (!s) {
            s = { items: new Set(), offences: 0, previous: 0, windowAt: now, ids: undefined }
            this.sources.set(name, s)
        } else this.roll(s, now)
        return s
    }

    private roll(s: Source<T>, now: number): void {
        const w = this.limits.penaltyWindow
        if (now - s.windowAt < w) return
        s.previous = now - s.windowAt < 2 * w ? s.offences : 0
        s.offences = 0
        s.windowAt = now
    }

    private isPenalized(s: Source<T>, now?: number): boolean {
        if (now !== undefined) this.roll(s, now)
        return s.offences + s.previous >= this.limits.penaltyOffences
    }
}

// A budget for log lines: at most `lines` every `periodMs` (a token bucket
// of that size). What it refuses is counted by kind, for one summary line.
export class LogBudget {
    private bucket: TokenBucket
    private skipped = new Map<string, number>()

    constructor(lines: number, periodMs = 1000) {
        this.bucket = new TokenBucket((lines * 1000) / periodMs, lines)
    }

    take(kind: string, now: number): boolean {
        if (this.bucket.take(now)) return true
        this.skipped.set(kind, (this.skipped.get(kind) ?? 0) + 1)
        return false
    }

    // For a line that may be logged now: the fields to add to it (the counts
    // of those that were not, since the last logged one), or undefined when
    // it is over budget.
    pass(kind: string, now: number): { unlogged?: Record<string, number> } | undefined {
        if (!this.take(kind, now)) return undefined
        const unlogged = this.takeSkipped()
        return unlogged ? { unlogged } : {}
    }

    // The counts not logged since the last call, or undefined if none.
    takeSkipped(): Record<string, number> | undefined {
        if (this.skipped.size === 0) return undefined
        const out = Object.fromEntries(this.skipped)
        this.skipped.clear()
        return out
    }
}
