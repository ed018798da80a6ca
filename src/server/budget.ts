// Budgets for what one peer may make the server do, as pure bookkeeping:
// time is passed in, nothing here touches a socket or a timer. The shell
// (driver.ts, server.ts) asks and acts: pauses a socket, cuts it, refuses.

// A token bucket: `perSecond` tokens a second, at most `capacity` held.
// Tokens may go negative (a debt): spending never fails, the caller asks
// whether it is in debt and for how long.
export class TokenBucket {
    private tokens: number
    private at = -1

    constructor(readonly perSecond: number, readonly capacity: number) {
        this.tokens = capacity
    }

    // Tokens held at `now` (negative: owed). A `now` before the last one
    // (a clock set back) refills nothing and counts on from there: waiting
    // for the clock to come back to the old time would refuse every take
    // for as long as it was set back.
    level(now: number): number {
        if (this.at >= 0 && now > this.at) this.tokens = Math.min(this.capacity, this.tokens + ((now - this.at) * this.perSecond) / 1000)
        this.at = now
        return this.tokens
    }

    spend(n: number, now: number): void {
        this.level(now)
        this.tokens -= n
    }

    // Takes one token if one is held.
    take(now: number): boolean {
        if (this.level(now) < 1) return false
        this.tokens--
        return true
    }

    // ms until the level is back to `target` (0 if it is).
    msUntil(target: number, now: number): number {
        const l = this.level(now)
        return l >= target ? 0 : Math.ceil(((target - l) * 1000) / this.perSecond)
    }
}

interface ReadBudgetLimits {
    lines: number // per second
    bytes: number // per second
    burstMs: number // the buckets hold this long's worth
    floodTime: number // ms over budget, without recovering, before the peer counts as flooding
}

// What a peer may send that brings nothing new (keepalives beyond need,
// duplicates, stray ACKs, bad lines): lines and bytes a second. New messages
// and ACKs of our messages do not count: the receive queue and the send
// window already hold those back. Over budget, the shell reads no further
// lines until the buckets refill (TCP then slows the peer); a peer that stays
// over budget, never letting the buckets refill to half, for floodTime ms is
// flooding, and the shell cuts it.
export class ReadBudget {
    private lines: TokenBucket
    private bytes: TokenBucket
    private overSince = -1

    constructor(readonly limits: ReadBudgetLimits) {
        this.lines = new TokenBucket(limits.lines, Math.max(1, (limits.lines * limits.burstMs) / 1000))
        this.bytes = new TokenBucket(limits.bytes, Math.max(1, (limits.bytes * limits.burstMs) / 1000))
    }

    spend(lines: number, bytes: number, now: number): void {
        this.lines.spend(lines, now)
        this.bytes.spend(bytes, now)
        this.track(now)
    }

    // True while either bucket is in debt: read no further line.
    exhausted(now: number): boolean {
        this.track(now)
        return this.lines.level(now) < 0 || this.bytes.level(now) < 0
    }

    // ms until reading may go on: both buckets back to a tenth of their
    // capacity, so a paused peer is read in batches, not line by line.
    waitMs(now: number): number {
        return Math.max(this.lines.msUntil(this.lines.capacity / 10, now), this.bytes.msUntil(this.bytes.capacity / 10, now))
    }

    // ms the peer has been over budget without recovering (0: it is not).
    overFor(now: number): number {
        this.track(now)
        return this.overSince < 0 ? 0 : now - this.overSince
    }

    flooding(now: number): boolean {
        return this.overSince >= 0 && this.overFor(now) >= this.limits.floodTime
    }

    private track(now: number): void {
        const l = this.lines.level(now)
        const b = this.bytes.level(now)
        if (l < 0 || b < 0) {
            if (this.overSince < 0) this.overSince = now
        } else if (this.overSince >= 0 && l >= this.lines.capacity / 2 && b >= this.bytes.capacity / 2) this.overSince = -1
    }
}
