// The qos demo's checker, used by the board and by the server: lines carry
// numbers 0, 1, 2, ... and every one must arrive exactly once (and in order,
// when the sender waits). Memory is bounded: numbers more than WINDOW ahead
// of the first missing one count that one as missing.

const WINDOW = 256

export class QosCheck {
    received = 0
    duplicates = 0
    missing = 0
    outOfOrder = 0
    restarts = 0
    private next = 0 // the lowest number not yet received
    private ahead: number[] = [] // numbers above `next` already received

    constructor(readonly inOrder: boolean) {}

    // Takes one line; returns "" or what was wrong with it.
    add(line: string): string {
        const n = +line
        if (n !== n || Math.floor(n) !== n || n < 0) return "not a number: " + line
        if (n === 0 && this.next > 0 && this.ahead.length === 0) {
            // The sender restarted and counts from 0 again.
            this.restarts++
            this.next = 0
        }
        this.received++
        if (n < this.next || this.ahead.indexOf(n) >= 0) {
            this.duplicates++
            return "duplicate " + n
        }
        let problem = ""
        if (n > this.next) {
            if (this.inOrder) {
                this.missing += n - this.next
                problem = "missing " + this.next + (n - this.next > 1 ? ".." + (n - 1) : "")
                this.next = n + 1
                return problem
            }
            this.outOfOrder++
            this.ahead.push(n)
            while (this.ahead.length > 0 && this.maxAhead() - this.next >= WINDOW) {
                this.missing++
                problem = "missing " + this.next
                this.next++
                this.advance()
            }
            return problem
        }
        this.next = n + 1
        this.advance()
        return ""
    }

    report(): string {
        return "received " + this.received + ", duplicates " + this.duplicates + ", missing " + this.missing + (this.restarts > 0 ? ", sender restarts " + this.restarts : "")
    }

    private advance(): void {
        while (true) {
            const i = this.ahead.indexOf(this.next)
            if (i < 0) return
            const rest: number[] = []
            for (let j = 0; j < this.ahead.length; j++) if (j !== i) rest.push(this.ahead[j])
            this.ahead = rest
            this.next++
        }
    }

    private maxAhead(): number {
        let m = -1
        for (let i = 0; i < this.ahead.length; i++) if (this.ahead[i] > m) m = this.ahead[i]
        return m
    }
}
