// Reconnect back-off: doubling from `first` up to `cap`, with jitter so that
// boards that lost the server together do not return in lockstep. Retries
// never stop (fault 7): the link is back within `cap` (+ connect time) of the
// server returning. `random` is a number in [0, 1) from the driver.
//
// Only a link that stayed up resets it: a server that accepts a connection
// and then refuses it (or a link that drops at once) counts as a failure,
// so a refused client backs off to the cap instead of reconnecting many
// times a second.

export class Backoff {
    private delay: number
    // Attempts since the last reset (saturates at 10^6); read it, never set
    // it (a field, not an accessor: a method costs board bytecode).
    count = 0
    private upAt = -1

    constructor(readonly first: number, readonly cap: number) {
        this.delay = first
    }

    // Delay before the next attempt: uniformly within [d/2, d] where d doubles.
    next(random: number): number {
        const d = this.delay
        this.delay = Math.min(d * 2, this.cap)
        if (this.count < 1000000) this.count++
        const r = random >= 0 && random < 1 ? random : 0.5
        return Math.floor(d / 2 + (d / 2) * r)
    }

    // True on the 1st, 2nd, 4th, 8th, ... failure in a row: when a problem
    // that repeats deserves a log line, without one per attempt.
    shouldReport(): boolean {
        const n = this.count
        return n > 0 && (n & (n - 1)) === 0
    }

    // The link came up at `now`.
    linkUp(now: number): void {
        this.upAt = now
    }

    // The link (or a connection that never came up) ended at `now`: a link
    // up for at least `stable` ms resets the back-off.
    linkDown(now: number, stable: number): void {
        if (this.upAt >= 0 && now - this.upAt >= stable) {
            this.delay = this.first
            this.count = 0
        }
        this.upAt = -1
    }
}
