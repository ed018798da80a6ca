// When the board should drop and rejoin WiFi. Only when WiFi itself looks
// lost: the runtime reported losing its IP (also while the link was up: the
// rejoin comes once it is down), opening a socket said the network is not
// available, or `maxFailures` connects in a row got no answer at all (timed
// out or could not resolve the host: a half-dead association, or an
// unreachable gateway, looks like this). A connect the network answered with
// a refusal, or a socket that opened but brought no link up, proves WiFi
// works and only the server is down: it never leads to a rejoin and clears
// the count. A rejoin that did not help doubles the count needed for the next
// one (up to 8x), so a server host that is switched off does not make the
// board cycle WiFi every few attempts.

// "noLink": a socket opened, then closed before a link came up on it.
export type ConnectOutcome = "refused" | "noLink" | "noAnswer" | "noNetwork"

export class RejoinPolicy {
    private noAnswer = 0
    private lost = ""
    private needed: number

    constructor(readonly maxFailures: number) {
        this.needed = maxFailures
    }

    lostIp(): void {
        this.lost = "lost its IP address"
    }

    // After a connect attempt that failed.
    failed(o: ConnectOutcome): void {
        if (o === "refused" || o === "noLink") {
            this.noAnswer = 0
            this.needed = this.maxFailures
        } else if (o === "noNetwork") this.lost = "network not available"
        else this.noAnswer++
    }

    // The link came up: WiFi works now. Call it then, not when the link's
    // socket ends, so that an IP lost while the link is up still leads to a
    // rejoin once it is down.
    connected(): void {
        this.noAnswer = 0
        this.lost = ""
        this.needed = this.maxFailures
    }

    // True when the next attempt should first rejoin WiFi.
    shouldRejoin(): boolean {
        return this.lost !== "" || this.noAnswer >= this.needed
    }

    // Why shouldRejoin() is true, for the log.
    reason(): string {
        if (this.lost !== "") return "WiFi " + this.lost
        return this.noAnswer + " connects in a row got no answer"
    }

    rejoined(): void {
        if (this.lost === "" && this.needed < this.maxFailures * 8) this.needed *= 2
        this.noAnswer = 0
        this.lost = ""
    }
}
