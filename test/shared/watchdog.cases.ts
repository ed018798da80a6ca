import { Backoff } from "../../src/shared/backoff.js"
import { Watchdog } from "../../src/shared/watchdog.js"
import { eq, ok, Rng, suite } from "./harness.js"

export const watchdogSuite = suite("watchdog and back-off", function (test) {
    test("watchdog: a 60 s outage with reconnect attempts never reboots", async function () {
        const w = new Watchdog(20000)
        const b = new Backoff(250, 3000)
        const rng = new Rng(3)
        w.start(0)
        let now = 0
        while (now < 60000) {
            // WiFi attempt, connect attempt (refused), back-off: each is progress.
            w.progress(now)
            now += b.next(rng.next()) + 100
            eq(w.expired(now), false, "expired at " + now)
        }
    })
    test("watchdog: a client whose tasks stop is rebooted after the limit", async function () {
        const w = new Watchdog(20000)
        w.start(0)
        w.progress(5000)
        eq(w.expired(24999), false, "not yet")
        eq(w.expired(25000), true, "reboot at 20 s without progress")
        eq(w.deadline(), 25000, "deadline")
    })
    test("watchdog: close() stops it", async function () {
        const w = new Watchdog(1000)
        w.start(0)
        w.stop()
        eq(w.expired(100000), false, "stopped")
        eq(w.deadline(), -1, "no deadline")
    })
    test("back-off: doubles to the cap, with jitter in [d/2, d], and never stops (fault 7)", async function () {
        const b = new Backoff(250, 3000)
        const lows: number[] = []
        const rng = new Rng(9)
        for (let i = 0; i < 200; i++) {
            const d = b.next(rng.next())
            const top = i >= 4 ? 3000 : 250 * (1 << i)
            if (d < top / 2 || d > top) ok(false, "attempt " + i + ": " + d + " outside [" + top / 2 + ", " + top + "]")
            if (i < 3) lows.push(d)
        }
        eq(b.failures(), 200, "200 attempts, no give-up")
        b.reset()
        ok(b.next(0) === 125, "reset starts over")
    })
})
