import { Backoff } from "../../src/shared/backoff.js"
import { Watchdog } from "../../src/shared/watchdog.js"
import { RejoinPolicy } from "../../src/shared/rejoin.js"
import { QosCheck } from "../../src/shared/qoscheck.js"
import { eq, ok, Rng, suite } from "./harness.js"

export const watchdogSuite = suite("watchdog, back-off, WiFi rejoin", function (test) {
    test("qos demo checker: in order, duplicates, gaps, out of order, sender restart", async function () {
        const a = new QosCheck(true)
        const lines = ["0", "1", "1", "3", "4", "0", "1"]
        const problems: string[] = []
        for (let i = 0; i < lines.length; i++) problems.push(a.add(lines[i]))
        eq(problems.join("|"), "||duplicate 1|missing 2|||", "wait mode")
        eq(a.report(), "received 7, duplicates 1, missing 1, sender restarts 1", "report")
        const b = new QosCheck(false)
        const order = ["1", "0", "3", "2", "2", "4"]
        for (let i = 0; i < order.length; i++) b.add(order[i])
        eq(b.report(), "received 6, duplicates 1, missing 0", "no-wait: out of order is fine")
        eq(b.outOfOrder, 2, "counted")
    })
    test("WiFi rejoin: on lostIp at once; after K failed connects in a row; a success resets the count", async function () {
        const r = new RejoinPolicy(3)
        eq(r.shouldRejoin(), false, "fresh")
        r.connectFailed()
        r.connectFailed()
        eq(r.shouldRejoin(), false, "two failures: the server may just be down")
        r.connectFailed()
        eq(r.shouldRejoin(), true, "third failure")
        r.rejoined()
        eq(r.shouldRejoin(), false, "after a rejoin")
        r.connectFailed()
        r.connectFailed()
        r.connected()
        r.connectFailed()
        r.connectFailed()
        eq(r.shouldRejoin(), false, "count reset by a connect")
        r.lostIp()
        eq(r.shouldRejoin(), true, "lostIp")
    })
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
