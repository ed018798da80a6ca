// The soak's exactly-once checker, on fixed logs.
import assert from "node:assert/strict"
import { check, failures, type LogRecord } from "../soak/checker.js"

let t = 0
function rec(who: string, kind: LogRecord["kind"], text: string, life = 0): LogRecord {
    return { t: t++, who, life, kind, text }
}

describe("soak checker", function () {
    const cases: Array<{ name: string; log: LogRecord[]; want: Partial<Record<string, number>>; fails: number }> = [
        {
            name: "each line sent and read once",
            log: [rec("n1", "S", "w.n1.srv.7.0"), rec("srv", "R", "w.n1.srv.7.0"), rec("srv", "S", "f.srv.n1.9.0"), rec("n1", "R", "f.srv.n1.9.0")],
            want: { "qos.up.delivered": 1, "qos.down.delivered": 1 },
            fails: 0,
        },
        { name: "a completed write never read is lost", log: [rec("n1", "S", "w.n1.srv.7.0")], want: { "qos.up.lost": 1 }, fails: 1 },
        {
            name: "read twice by one life is a duplicate",
            log: [rec("srv", "R", "f.n1.srv.7.0"), rec("srv", "R", "f.n1.srv.7.0"), rec("n1", "S", "f.n1.srv.7.0")],
            want: { "qos.up.duplicated": 1 },
            fails: 1,
        },
        {
            name: "read again by a restarted receiver is counted apart",
            log: [rec("srv", "R", "w.n1.srv.7.0", 0), rec("srv", "R", "w.n1.srv.7.0", 1), rec("n1", "S", "w.n1.srv.7.0")],
            want: { "qos.up.crashDuplicated": 1, "qos.up.duplicated": 0 },
            fails: 0,
        },
        {
            name: "wait lines out of order; per sender run and receiver",
            log: [rec("n1", "R", "w.srv.n1.5.1"), rec("n1", "R", "w.srv.n1.5.0"), rec("b1", "R", "w.srv.b1.5.0")],
            want: { "qos.down.outOfOrder": 1, "qos.down.unconfirmed": 3 },
            fails: 1,
        },
        {
            name: "lost because the receiver was killed soon after the ACK: counted apart, still a failure",
            log: [rec("srv", "R", "w.n1.srv.7.0", 0), rec("n1", "S", "w.n1.srv.7.1"), rec("srv", "I", "up", 0), rec("srv", "I", "up", 1)],
            want: { "qos.up.lost": 1, "qos.up.lostInCrash": 1, "qos.up.unconfirmed": 1 },
            fails: 1,
        },
        {
            name: "lost in a crash also when the receiver's last log came just before the ACK",
            log: [rec("b1", "I", "start", 0), rec("srv", "S", "f.srv.b1.7.3"), rec("b1", "I", "start", 1)],
            want: { "qos.down.lost": 1, "qos.down.lostInCrash": 1 },
            fails: 1,
        },
        {
            name: "not a crash loss when the receiver lived on for long after",
            log: [rec("srv", "S", "f.srv.b1.7.4"), { t: 5000, who: "b1", life: 0, kind: "I", text: "x" }, { t: 5001, who: "b1", life: 1, kind: "I", text: "start" }],
            want: { "qos.down.lost": 1, "qos.down.lostInCrash": 0 },
            fails: 1,
        },
        {
            name: "a line a killed life of the receiver took (its id in a \"took\" after the \"sent\") before its code logged it: counted apart, not lost",
            log: [rec("srv", "T", "sent n1 28 w.srv.n1.7.0"), rec("n1", "T", "took n1 27 28"), rec("srv", "S", "w.srv.n1.7.0"), rec("n1", "I", "start", 1)],
            want: { "qos.down.lost": 0, "qos.down.takenByKilled": 1 },
            fails: 0,
        },
        {
            name: "the same toward the server: the link in both records is the client's id",
            log: [rec("n1", "T", "sent n1 3 f.n1.srv.7.0"), rec("srv", "T", "took n2 3"), rec("srv", "T", "took n1 3"), rec("n1", "S", "f.n1.srv.7.0"), rec("srv", "I", "up", 1)],
            want: { "qos.up.lost": 0, "qos.up.takenByKilled": 1 },
            fails: 0,
        },
        {
            name: "taken by the receiver's last life and never read, or taken by another link, or only in an earlier cycle of the id: lost",
            log: [
                { t: 0, who: "n1", life: 0, kind: "T", text: "took n1 9" },
                { t: 5000, who: "srv", life: 0, kind: "T", text: "sent n1 9 w.srv.n1.7.0" },
                { t: 5001, who: "srv", life: 0, kind: "T", text: "sent n2 4 w.srv.n2.7.0" },
                { t: 5002, who: "n1", life: 0, kind: "T", text: "took n2 4" },
                { t: 5003, who: "srv", life: 0, kind: "T", text: "sent n3 5 w.srv.n3.7.0" },
                { t: 5004, who: "n3", life: 0, kind: "T", text: "took n3 5" },
                { t: 5005, who: "srv", life: 0, kind: "S", text: "w.srv.n1.7.0" },
                { t: 5006, who: "srv", life: 0, kind: "S", text: "w.srv.n2.7.0" },
                { t: 5007, who: "srv", life: 0, kind: "S", text: "w.srv.n3.7.0" },
                { t: 5008, who: "n1", life: 1, kind: "I", text: "start" },
                { t: 5009, who: "n2", life: 1, kind: "I", text: "start" },
            ],
            want: { "qos.down.lost": 3, "qos.down.takenByKilled": 0 },
            fails: 3,
        },
        {
            name: "an id a restart holds as seen must have been taken (or kept unread) by an earlier life after the peer last sent it as a qos line",
            log: [
                { t: 0, who: "srv", life: 0, kind: "T", text: "sent n1 9 w.srv.n1.7.0" },
                { t: 1, who: "n1", life: 0, kind: "T", text: "took n1 9" },
                { t: 2, who: "n1", life: 1, kind: "T", text: "held n1 9" }, // fine
                { t: 5000, who: "srv", life: 0, kind: "T", text: "sent n1 9 w.srv.n1.7.1" },
                { t: 5001, who: "n1", life: 2, kind: "T", text: "kept n1 11" },
                { t: 5002, who: "n1", life: 3, kind: "T", text: "held n1 9 10 11" }, // 9: sent again, not taken since; 10: never taken; 11: kept unread
            ],
            want: { staleSeen: 2, "qos.down.unconfirmed": 0 },
            fails: 0,
        },
        { name: "no-qos lines may be lost", log: [rec("n1", "S", "n.n1.srv.7.0")], want: { "noQos.up.lost": 1 }, fails: 0 },
        { name: "a line no end wrote, or read by the wrong end", log: [rec("srv", "R", "hello"), rec("n1", "R", "w.srv.b1.5.0")], want: { bad: 2 }, fails: 2 },
    ]
    for (const c of cases) {
        it(c.name, function () {
            const r = check(c.log)
            for (const [path, v] of Object.entries(c.want)) {
                const got = path.split(".").reduce((o: any, k) => o[k], r)
                assert.equal(got, v, path)
            }
            assert.equal(failures(r), c.fails)
            assert.equal(failures(r, true), c.fails + r.qos.up.crashDuplicated + r.qos.down.crashDuplicated + r.staleSeen)
        })
    }
})
