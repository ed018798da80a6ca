// When the board should drop and rejoin WiFi (the original dropped it on every
// outage; here only when WiFi itself looks at fault): on `lostIp`, or after
// `maxFailures` connects in a row failed while WiFi claimed to be up (a
// half-dead association). A server that is merely down costs failed connects
// but no rejoin until then, and a rejoin resets the count.

export class RejoinPolicy {
    private failures = 0
    private lost = false

    constructor(readonly maxFailures: number) {}

    lostIp(): void {
        this.lost = true
    }

    connectFailed(): void {
        this.failures++
    }

    connected(): void {
        this.failures = 0
        this.lost = false
    }

    // True when the next attempt should first rejoin WiFi.
    shouldRejoin(): boolean {
        return this.lost || this.failures >= this.maxFailures
    }

    rejoined(): void {
        this.failures = 0
        this.lost = false
    }
}
