// The exactly-once checker over the logs of both ends of the soak. Lines are
// "<stream>.<from>.<to>.<run>.<n>": stream "w" (qos, wait: in order), "f"
// (qos, no wait), "n" (no qos). Each end logs "S" once a write completed and
// "R" for each line its application read. With a state folder each Node end
// also logs "T" records before they reach its state: "sent <link> <id>
// <line>" (a qos line got wire id <id>) and "took <link> <id>..." (its
// application took lines with these ids), "kept <link> <id>..." (lines ACKed
// unread, kept with their payload); at a start, "held <link> <id>..."
// (the ids its saved seen set holds).

export interface LogRecord {
    t: number // ms, when the runner got the log line
    who: string // the end that logged it: "srv" or a client id
    life: number // which start of that end (0, 1, ...): a restart is a new life
    kind: "S" | "R" | "I" | "T"
    text: string
}

export interface Tally {
    sent: number // writes completed (qos: ACKed)
    delivered: number // distinct lines read
    lost: number // completed, never read
    lostInCrash: number // of lost: the receiver was killed within CRASH_WINDOW ms of the write completing (a hint, still a loss)
    takenByKilled: number // completed, never read, and apart from lost: a life of the receiver took it (its "T took") and was killed before its code logged it
    duplicated: number // read twice or more by one life of the receiver
    crashDuplicated: number // read again only by a later life of the receiver (memory-only state lost)
    outOfOrder: number // "w" lines read after a later one of the same sender run
    unconfirmed: number // read, but the writer never saw its write complete (killed, or still pending)
}

interface Pairs {
    qos: { up: Tally; down: Tally } // up: clients to server; down: server to clients
    noQos: { up: Tally; down: Tally }
}

export interface Report extends Pairs {
    v1: Pairs // pairs with an original micropython-iot client, apart
    bad: number // lines read that are not soak lines
    staleSeen: number // ids a start held as seen that no earlier life took or kept, or only before the peer sent that id again as a qos line (its next line with that id would be lost)
    examples: { lost: string[]; lostInCrash: string[]; takenByKilled: string[]; duplicated: string[]; crashDuplicated: string[]; outOfOrder: string[]; staleSeen: string[] } // up to 20 lines each
}

function tally(): Tally {
    return { sent: 0, delivered: 0, lost: 0, lostInCrash: 0, takenByKilled: 0, duplicated: 0, crashDuplicated: 0, outOfOrder: 0, unconfirmed: 0 }
}

interface Line {
    stream: string
    from: string
    to: string
    run: string
    n: number
}

export function parseSoakLine(s: string): Line | undefined {
    const m = /^([wfn])\.([^.]+)\.([^.]+)\.([0-9a-f]+)\.(\d+)$/.exec(s)
    if (!m) return undefined
    return { stream: m[1]!, from: m[2]!, to: m[3]!, run: m[4]!, n: Number(m[5]) }
}

function pairs(): Pairs {
    return { qos: { up: tally(), down: tally() }, noQos: { up: tally(), down: tally() } }
}

export const CRASH_WINDOW = 1000
// A "took" of a line's id counts from this long before its "sent" record:
// the two ends' logs reach the runner through separate pipes.
const TOOK_SLACK = 100

// `v1Ids`: the clients that are original micropython-iot boards.
export function check(records: readonly LogRecord[], v1Ids: ReadonlySet<string> = new Set()): Report {
    const report: Report = { ...pairs(), v1: pairs(), bad: 0, staleSeen: 0, examples: { lost: [], lostInCrash: [], takenByKilled: [], duplicated: [], crashDuplicated: [], outOfOrder: [], staleSeen: [] } }
    const note = (k: keyof Report["examples"], s: string) => void (report.examples[k].length < 20 && report.examples[k].push(s))
    const sent = new Map<string, number>() // line -> when its write completed
    const lives = new Map<string, Array<{ life: number; first: number; last: number }>>() // end -> its lives in order, first and last record
    const reads = new Map<string, number[]>() // line -> lives of the receiver that read it
    const lastW = new Map<string, number>() // sender run, receiver and its life -> last "w" number read
    const wire = new Map<string, { id: string; at: number }>() // line -> its last "sent" record
    const took = new Map<string, Array<{ at: number; life: number }>>() // "receiver link id" -> its "took" records
    const sentAt = new Map<string, number>() // "receiver link id" -> when the peer last sent that id (qos)
    const markedAt = new Map<string, number>() // "receiver link id" -> its last "took" or "kept" of that id
    const pick = (l: Line) => {
        const p = v1Ids.has(l.from === "srv" ? l.to : l.from) ? report.v1 : report
        return (l.stream === "n" ? p.noQos : p.qos)[l.from === "srv" ? "down" : "up"]
    }
    for (const r of records) {
        const ls = lives.get(r.who) ?? []
        if (ls.length === 0 || ls[ls.length - 1]!.life !== r.life) ls.push({ life: r.life, first: r.t, last: r.t })
        else ls[ls.length - 1]!.last = r.t
        lives.set(r.who, ls)
        if (r.kind === "I") continue
        if (r.kind === "T") {
            const w = r.text.split(" ")
            if (w[0] === "sent" && w.length === 4) {
                wire.set(w[3]!, { id: w[2]!, at: r.t })
                sentAt.set(`${r.who === "srv" ? w[1] : "srv"} ${w[1]} ${w[2]}`, r.t)
            }
            if (w[0] === "held") for (const id of w.slice(2)) {
                const k = `${r.who} ${w[1]} ${id}`
                const last = markedAt.get(k)
                const sent = sentAt.get(k)
                if (last === undefined || (sent !== undefined && sent > last + TOOK_SLACK)) (report.staleSeen++, note("staleSeen", `${r.who} life ${r.life}: ${w[1]}'s id ${id}`))
            }
            if (w[0] === "took" || w[0] === "kept") for (const id of w.slice(2)) {
                const k = `${r.who} ${w[1]} ${id}`
                markedAt.set(k, r.t)
                if (w[0] !== "took") continue
                const ts = took.get(k)
                if (ts === undefined) took.set(k, [{ at: r.t, life: r.life }])
                else ts.push({ at: r.t, life: r.life })
            }
            continue
        }
        const l = parseSoakLine(r.text)
        if (!l || (r.kind === "R" && l.to !== r.who) || (r.kind === "S" && l.from !== r.who)) {
            if (r.kind === "R") report.bad++
            continue
        }
        if (r.kind === "S") {
            if (!sent.has(r.text)) pick(l).sent++
            sent.set(r.text, r.t)
            continue
        }
        const readers = reads.get(r.text) ?? []
        const t = pick(l)
        if (readers.length === 0) t.delivered++
        else if (readers.includes(r.life)) (t.duplicated++, note("duplicated", r.text))
        else (t.crashDuplicated++, note("crashDuplicated", r.text))
        readers.push(r.life)
        reads.set(r.text, readers)
        if (l.stream === "w" && readers.length === 1) {
            const k = `${l.from}.${l.to}.${l.run}.${r.life}`
            const last = lastW.get(k) ?? -1
            if (l.n < last) (t.outOfOrder++, note("outOfOrder", `${r.text} after ${last}`))
            else lastW.set(k, l.n)
        }
    }
    for (const [s, at] of sent) {
        if (reads.has(s)) continue
        const l = parseSoakLine(s)!
        const t = pick(l)
        const ls = lives.get(l.to) ?? []
        if (l.stream !== "n" && takenByKilled(s, l, ls)) {
            t.takenByKilled++
            note("takenByKilled", s)
            continue
        }
        t.lost++
        if (l.stream === "n") continue
        note("lost", s)
        // The receiver's life that ACKed it (the last to start before `at`)
        // was killed within CRASH_WINDOW of `at` (its last record is the
        // latest sign of life; the kill came after it). With ACK on read no
        // line should be lost there either; the count points where to look.
        let i = -1
        for (let k = 0; k < ls.length; k++) if (ls[k]!.first <= at) i = k
        if (i >= 0 && i < ls.length - 1 && Math.abs(ls[i]!.last - at) <= CRASH_WINDOW) (t.lostInCrash++, note("lostInCrash", s))
    }
    // The first life of the receiver to take the line's id after it was sent
    // (the link is the client's id at both ends), if it was not the last.
    function takenByKilled(s: string, l: Line, ls: Array<{ life: number }>): boolean {
        const w = wire.get(s)
        if (w === undefined) return false
        const by = took.get(`${l.to} ${l.from === "srv" ? l.to : l.from} ${w.id}`)?.find((x) => x.at >= w.at - TOOK_SLACK)
        return by !== undefined && ls.length > 0 && by.life !== ls[ls.length - 1]!.life
    }
    for (const [s] of reads) {
        if (!sent.has(s)) pick(parseSoakLine(s)!).unconfirmed++
    }
    return report
}

// Anything a qos promise forbids: lost, duplicated (within one life), out of
// order. With a v1 peer a duplicate can be the original's (fault 1): counted
// in the report, not here.
// `durable`: the ends kept their delivery state (--state), so a line read
// again by a restarted receiver is a failure too.
export function failures(r: Report, durable = false): number {
    const q = (t: Tally) => t.lost + t.duplicated + t.outOfOrder + (durable ? t.crashDuplicated : 0)
    const v1 = (t: Tally) => t.lost + t.outOfOrder
    return q(r.qos.up) + q(r.qos.down) + r.noQos.up.duplicated + r.noQos.down.duplicated + v1(r.v1.qos.up) + v1(r.v1.qos.down) + r.bad + (durable ? r.staleSeen : 0)
}

export function median(xs: readonly number[]): number {
    if (xs.length === 0) return NaN
    const s = [...xs].sort((a, b) => a - b)
    return s[(s.length - 1) >> 1]!
}
