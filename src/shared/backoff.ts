// Reconnect back-off: doubling from `first` up to `cap`, with jitter so that
// boards that lost the server together do not return in lockstep. Retries
// never stop (fault 7): the link is back within `cap` (+ connect time) of the
// server returning. `random` is a number in [0, 1) from the driver.

export class Backoff {
    private delay: number
    private count = 0

    constructor(readonly first: number, readonly cap: number) {
        this.delay = first
    }

    // Delay before the next attempt: uniformly within [d/2, d] where d doubles.
    next(random: number): number {
        const d = this.delay
        this.delay = d * 2 < this.cap ? d * 2 : this.cap
        if (this.count < 1000000) this.count++
        const r = random >= 0 && random < 1 ? random : 0.5
        return Math.floor(d / 2 + (d / 2) * r)
    }

    // Attempts since the last reset (saturates at 10^6).
    failures(): number {
        return this.count
    }

    reset(): void {
        this.delay = this.first
        this.count = 0
    }
}
