import { parseReport, reportLine, reportProblem, Report } from "../../src/shared/report.js"
import { blanks, clientDrive, serverDrive } from "./drive.js"
import { eq, ok, suite } from "./harness.js"

// Fixture tables are built per case: module-level arrays would stay on the
// test VM's heap (64 KB) for the whole run.
function good(): Report[] {
    return [
        { firmware: "1.4.2", uptime: 3600, reconnects: 3, heap: 20480, rssi: -67, reset: "watchdog" },
        { firmware: "devs-iot/0.1.0+qos", uptime: 0, reconnects: 0 },
        { firmware: "x", uptime: 4000000000, reconnects: 7, rssi: 0 },
    ]
}

function goodLines(): string[] {
    return ["!report fw=1.4.2 up=3600 rc=3 heap=20480 rssi=-67 reset=watchdog\n", "!report fw=devs-iot/0.1.0+qos up=0 rc=0\n", "!report fw=x up=4000000000 rc=7 rssi=0\n"]
}

// Lines that are not reports, and what the parser says of each.
function bad(): string[][] {
    return [
        ["!report", "no fw field"],
        ["!report up=1 rc=0", "no fw field"],
        ["!report fw=1 rc=0", "no up field"],
        ["!report fw=1 up=1", "no rc field"],
        ["!report fw=<b>x</b> up=1 rc=0", "fw is not a token"],
        ["!report fw=1 up=-1 rc=0", "up must be a whole number"],
        ["!report fw=1 up=1.5 rc=0", "up must be a whole number"],
        ["!report fw=1 up=99999999999 rc=0", "up must be a whole number"],
        ["!report fw=1 up=1 rc=0 rssi=5", "rssi must be a whole number from -150 to 0"],
        ["!report fw=1 up=1 rc=0 junk", "field without a value"],
        ["!reportx fw=1 up=1 rc=0", "not a report line"],
    ]
}

function same(a: Report, b: Report, what: string): void {
    eq(a.firmware, b.firmware, what + ": firmware")
    eq(a.uptime, b.uptime, what + ": uptime")
    eq(a.reconnects, b.reconnects, what + ": reconnects")
    eq(a.heap, b.heap, what + ": heap")
    eq(a.rssi, b.rssi, what + ": rssi")
    eq(a.reset, b.reset, what + ": reset")
}

// A client link up with a devs-iot server.
function devsClient() {
    const d = clientDrive({})
    d.take()
    d.feed("!hello epoch=S\n")
    d.take()
    return d
}

export const reportSuite = suite("report", function (test) {
    test("report: each fixture encodes to its line and parses back", async function () {
        const GOOD = good()
        const GOOD_LINES = goodLines()
        for (let i = 0; i < GOOD.length; i++) {
            eq(reportLine(GOOD[i]), GOOD_LINES[i], "line " + i)
            const r = parseReport(GOOD_LINES[i].slice(0, GOOD_LINES[i].length - 1))
            ok(typeof r !== "string", "parses: " + GOOD_LINES[i])
            if (typeof r !== "string") same(r, GOOD[i], "fixture " + i)
        }
    })
    test("report: unknown fields are skipped (a later board, an older server)", async function () {
        const r = parseReport("!report fw=1 temp=40 up=2 rc=1 next=x=y")
        ok(typeof r !== "string", "parses")
        if (typeof r !== "string") eq(r.uptime, 2, "uptime")
    })
    test("report: malformed lines are refused with a reason", async function () {
        const BAD = bad()
        for (let i = 0; i < BAD.length; i++) {
            const r = parseReport(BAD[i][0])
            ok(typeof r === "string" && r.indexOf(BAD[i][1]) === 0, BAD[i][0] + ": expected '" + BAD[i][1] + "', got " + (typeof r === "string" ? r : "a report"))
        }
        let long = "!report fw=1 up=1 rc=0"
        while (long.length <= 200) long += " x=1"
        ok(typeof parseReport(long) === "string", "over 200 bytes")
    })
    test("report: a field out of range is a problem, named (the Node client refuses it; a board builds its own)", async function () {
        const bad: Report[] = [{ firmware: "a b", uptime: 1, reconnects: 0 }, { firmware: "1", uptime: -1, reconnects: 0 }, { firmware: "1", uptime: 1, reconnects: 0, rssi: 3 }, { firmware: "1", uptime: 1, reconnects: 0, reset: "" }]
        const names = ["firmware", "uptime", "rssi", "reset"]
        for (let i = 0; i < bad.length; i++) ok(reportProblem(bad[i]).indexOf(names[i] + " must be") === 0, "refused: " + names[i] + ", got '" + reportProblem(bad[i]) + "'")
        const GOOD = good()
        for (let i = 0; i < GOOD.length; i++) eq(reportProblem(GOOD[i]), "", "fixture " + i)
    })
    test("report: a client sends it only once up with a devs-iot server", async function () {
        const GOOD = good()
        const GOOD_LINES = goodLines()
        const early = clientDrive({})
        eq(early.link.sendReport(GOOD[1]), false, "not before the link is up")
        const v1 = clientDrive({})
        v1.take()
        v1.feed("\n") // a v1 server's first line
        eq(v1.link.status(), true, "up with a v1 server")
        eq(v1.link.sendReport(GOOD[1]), false, "a v1 peer never sees a report")
        v1.advance(0)
        eq(v1.take().indexOf("!"), -1, "nothing sent")
        const d = devsClient()
        eq(d.link.sendReport(GOOD[0]), true, "sent to a devs-iot peer")
        d.advance(0)
        eq(d.take(), GOOD_LINES[0], "the line")
    })
    test("report: a server takes a devs-iot client's report as an event; from a v1 client it is a bad line", async function () {
        const GOOD = good()
        const GOOD_LINES = goodLines()
        const d = serverDrive({})
        d.feed(blanks(10) + "!hello epoch=C\n" + GOOD_LINES[0])
        let got = 0
        for (let i = 0; i < d.events.length; i++) {
            const e = d.events[i]
            if (e.type === "report") {
                got++
                same(e.report, GOOD[0], "event")
            }
        }
        eq(got, 1, "one report event")
        d.feed("!report fw=1 up=x rc=0\n")
        eq(d.notices("bad-line"), 1, "a malformed report is a bad line")
        const v1 = serverDrive({})
        v1.feed("\n")
        v1.advance(500)
        eq(v1.link.status(), true, "v1 client up")
        v1.feed(GOOD_LINES[0])
        eq(v1.count("report"), 0, "no report from a v1 peer")
        eq(v1.notices("bad-line"), 1, "a bad line")
    })
    test("report: reports go from client to server only; a client takes one from its server as a bad line", async function () {
        const d = devsClient()
        d.feed(goodLines()[0])
        eq(d.count("report"), 0, "no report event")
        eq(d.notices("bad-line"), 1, "a bad line")
        eq(d.link.status(), true, "the link stays up")
    })
})
