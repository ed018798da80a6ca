import type { Range } from "./config.js"

// The board's watchdog decision. The firmware reports what happens; only real
// progress moves the deadline: the link heard from the server (a line, a
// keepalive, a completed handshake), or a connect the network answered (a
// refusal, or a socket that opened but brought no link up: WiFi and the IP
// stack work, only the server is down or hung, and a reboot would not help).
// Waiting for WiFi, rejoining it, back-off sleeps and connects that got no
// answer are not progress: a board stuck there for `limit` ms is rebooted,
// which also resets a wedged WiFi stack.

// On by default, and far above any normal reconnect: a WiFi rejoin plus the
// runtime's 10 s scans take well under a minute, an access point that
// restarts comes back in one to three.
export const WATCHDOG: Range = { min: 0, max: 3600000, dflt: 300000 }

export type WatchdogEvent =
    | "received" // a line or keepalive from the server
    | "linkUp" // handshake completed
    | "refused" // a connect the network answered with a refusal
    | "noLink" // a socket that opened, then closed before a link came up (a proxy before a dead server, a hung server, a refused id)
    | "waitingForWifi" // no IP yet
    | "rejoin" // WiFi dropped and rejoined
    | "noAnswer" // a connect that timed out, or could not resolve / reach the host
    | "noNetwork" // opening a socket said the network is not available
    | "backoff" // sleeping before the next attempt

// Whether an event is progress (the one rule; see the cases).
export function isProgress(e: WatchdogEvent): boolean {
    return e === "received" || e === "linkUp" || e === "refused" || e === "noLink"
}

// Started at `now` (the client makes it when it starts, and its fiber that
// checks it ends when the client closes).
export class Watchdog {
    private last: number // the last progress

    constructor(readonly limit: number, now: number) {
        this.last = now
    }

    // Reports an event; moves the deadline only when it is progress.
    note(e: WatchdogEvent, now: number): void {
        if (isProgress(e) && now > this.last) this.last = now
    }

    // True when the board should be rebooted now.
    expired(now: number): boolean {
        return now - this.last >= this.limit
    }
}
