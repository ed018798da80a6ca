import { Backoff } from "../../src/shared/backoff.js"
import { isProgress, Watchdog, WATCHDOG, type WatchdogEvent } from "../../src/shared/watchdog.js"
import { RejoinPolicy } from "../../src/shared/rejoin.js"
import { QosCheck } from "../../src/apps/qos/check.js"
import { eq, hooks, ok, Rng, suite } from "./harness.js"

// An hour of attempts that end in `e` (each `wait` ms long), with back-off
// (plus `gap` ms) between them: the watchdog never expires.
async function anHourOf(e: WatchdogEvent, seed: number, wait: number, gap: number): Promise<void> {
    const w = new Watchdog(WATCHDOG.dflt, 0)
    const b = new Backoff(250, 3000)
    const rng = new Rng(seed)
    let now = 0
    let steps = 0
    while (now < 3600000) {
        if (++steps % 100 === 0) await hooks.pause()
        now += wait
        w.note(e, now)
        w.note("backoff", now)
        now += b.next(rng.next()) + gap
        eq(w.expired(now), false, "expired at " + now)
    }
}

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
    test("WiFi rejoin: never for refused connects (only the server is down); at once on lost IP or no network", async function () {
        const r = new RejoinPolicy(3)
        eq(r.shouldRejoin(), false, "fresh")
        for (let i = 0; i < 50; i++) r.failed("refused")
        eq(r.shouldRejoin(), false, "50 refusals: the network answered, WiFi is fine")
        for (let i = 0; i < 50; i++) r.failed("noLink")
        eq(r.shouldRejoin(), false, "50 sockets that opened without a link: WiFi is fine")
        r.lostIp()
        eq(r.shouldRejoin(), true, "lostIp")
        eq(r.reason(), "WiFi lost its IP address", "reason")
        r.rejoined()
        eq(r.shouldRejoin(), false, "after a rejoin")
        r.failed("noNetwork")
        eq(r.shouldRejoin(), true, "network not available")
        eq(r.reason(), "WiFi network not available", "reason")
        r.rejoined()
        r.connected() // the link came up
        r.lostIp() // while it is up
        eq(r.shouldRejoin(), true, "an IP lost while the link was up: a rejoin once it is down")
    })
    test("WiFi rejoin: after K connects in a row with no answer; a refusal or a connect clears the count; a rejoin that did not help doubles K", async function () {
        const r = new RejoinPolicy(3)
        r.failed("noAnswer")
        r.failed("noAnswer")
        r.failed("refused")
        r.failed("noAnswer")
        r.failed("noAnswer")
        eq(r.shouldRejoin(), false, "a refusal in between proves the network works")
        r.failed("noLink")
        r.failed("noAnswer")
        r.failed("noAnswer")
        eq(r.shouldRejoin(), false, "so does a socket that opened without a link")
        r.failed("noAnswer")
        eq(r.shouldRejoin(), true, "three without an answer in a row")
        eq(r.reason(), "3 connects in a row got no answer", "reason")
        r.rejoined()
        for (let i = 0; i < 5; i++) r.failed("noAnswer")
        eq(r.shouldRejoin(), false, "after a rejoin that did not help, 6 are needed")
        r.failed("noAnswer")
        eq(r.shouldRejoin(), true, "6")
        r.rejoined()
        for (let i = 0; i < 11; i++) r.failed("noAnswer")
        eq(r.shouldRejoin(), false, "then 12")
        r.connected()
        r.failed("noAnswer")
        r.failed("noAnswer")
        r.failed("noAnswer")
        eq(r.shouldRejoin(), true, "a connect starts over at 3")
    })
    test("watchdog: progress is the server heard from, a refused connect or a socket that opened without a link; waiting for WiFi, rejoins, back-off and unanswered connects are not", async function () {
        eq(isProgress("received"), true, "received")
        eq(isProgress("linkUp"), true, "linkUp")
        eq(isProgress("refused"), true, "refused")
        eq(isProgress("noLink"), true, "a socket that opened without a link")
        eq(isProgress("waitingForWifi"), false, "waitingForWifi")
        eq(isProgress("rejoin"), false, "rejoin")
        eq(isProgress("backoff"), false, "backoff")
        eq(isProgress("noAnswer"), false, "noAnswer")
    })
    test("watchdog: a server down for an hour (refused connects with back-off) never reboots", async function () {
        await anHourOf("refused", 3, 0, 100)
    })
    test("watchdog: an address that accepts but gives no link for an hour (a proxy before a dead server, a hung server) never reboots", async function () {
        await anHourOf("noLink", 5, 4000, 0) // 4000: the handshake's deadline at the default timeout
    })
    test("watchdog: a board stuck waiting for WiFi is rebooted after the limit", async function () {
        const w = new Watchdog(WATCHDOG.dflt, 0)
        w.note("received", 1000)
        let now = 1000
        while (now < 1000 + WATCHDOG.dflt - 4000) {
            now += 4000 // waitUp(2 * timeout) at the default timeout
            w.note("waitingForWifi", now)
            w.note("rejoin", now)
            eq(w.expired(now), false, "not yet at " + now)
        }
        eq(w.expired(1000 + WATCHDOG.dflt), true, "reboot " + WATCHDOG.dflt + " ms after the server was last heard")
    })
    test("watchdog: the default is far above a normal reconnect (lost IP, rejoin, an access point restarting for 3 minutes)", async function () {
        const w = new Watchdog(WATCHDOG.dflt, 0)
        w.note("received", 0)
        // WiFi gone for 180 s: rejoins and waits, none of it progress...
        let now = 0
        while (now < 180000) {
            now += 8000
            w.note("rejoin", now)
            w.note("waitingForWifi", now)
        }
        // ...then a few unanswered connects while the server's ARP entry comes back, and the link.
        for (let i = 0; i < 5; i++) {
            now += 2000 + 3000
            w.note("noAnswer", now)
        }
        eq(w.expired(now), false, "no reboot at " + now)
        w.note("linkUp", now)
        eq(w.expired(now + WATCHDOG.dflt - 1), false, "a fresh limit once the link is up")
        eq(w.expired(now + WATCHDOG.dflt), true, "reboot a full limit after the link came up")
    })
    test("watchdog: a client whose tasks stop is rebooted after the limit", async function () {
        const w = new Watchdog(20000, 0)
        w.note("received", 5000)
        eq(w.expired(24999), false, "not yet")
        eq(w.expired(25000), true, "reboot at 20 s without progress")
    })
    test("watchdog: an event that is not progress never moves the deadline, and a late note never moves it back", async function () {
        const w = new Watchdog(1000, 0)
        w.note("received", 500)
        w.note("received", 400)
        w.note("backoff", 1200)
        eq(w.expired(1499), false, "not yet")
        eq(w.expired(1500), true, "1000 ms after the progress at 500")
    })
    test("back-off: doubles to the cap, with jitter in [d/2, d], and never stops (fault 7)", async function () {
        const b = new Backoff(250, 3000)
        const rng = new Rng(9)
        for (let i = 0; i < 200; i++) {
            const d = b.next(rng.next())
            const top = i >= 4 ? 3000 : 250 * (1 << i)
            if (d < top / 2 || d > top) ok(false, "attempt " + i + ": " + d + " outside [" + top / 2 + ", " + top + "]")
        }
        b.linkUp(0)
        b.linkDown(1000, 1000)
        ok(b.next(0) === 125, "a link up for the stable time starts over")
    })
})
