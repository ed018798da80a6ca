// The board's watchdog decision. The firmware feeds it progress: a line
// received, and each step of reconnecting (WiFi attempt, connect attempt,
// back-off). A board whose server or WiFi is down keeps making progress, so it
// is never rebooted for that; one whose tasks stopped moving for `limit` ms is.

export class Watchdog {
    private last = -1 // -1: stopped

    constructor(readonly limit: number) {}

    start(now: number): void {
        this.last = now
    }

    progress(now: number): void {
        if (this.last >= 0 && now > this.last) this.last = now
    }

    stop(): void {
        this.last = -1
    }

    running(): boolean {
        return this.last >= 0
    }

    // True when the board should be rebooted now.
    expired(now: number): boolean {
        return this.last >= 0 && now - this.last >= this.limit
    }

    // When expired() would next become true, or -1 when stopped.
    deadline(): number {
        return this.last >= 0 ? this.last + this.limit : -1
    }
}
