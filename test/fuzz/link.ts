// The whole Link, server or client end, fed valid transcripts (id probe
// blanks, !hello, messages, ACKs, keepalives) that are then mutated, cut into
// random chunks and delivered at random times, with the application writing
// and reading (or not) in between. Oracles, checked after every operation:
// - nothing throws except LinkError from write() with a documented code;
// - bounded: receive queue (lines, bytes), backlog, framer, send queue and window;
// - delivered lines are a subsequence of the valid message lines received;
// - every line sent is a keepalive, an ACK of a message received on that
//   socket or an earlier one (at most once per received line: an ACK owed
//   when a socket closes may go on the next), a message the application wrote,
//   or our hello where the extension handshake allows it (a v1 peer never
//   sees one); the client sends its id and probe first and no message or ACK
//   before a complete line arrived;
// - events are well formed: up/down alternate and match status(), each ticket
//   completes at most once, "close" leaves no socket, notices have known codes;
// - timers make progress (no deadline that stays in the past).

import { boardDefaults, ClientLink, hasSocket, isClosed, Link, readable, wantsRead, ServerLink, LinkEvent, LinkOptions, nodeDefaults, resolveConfig } from "../../src/shared/index.js"
import { wireId } from "../../src/shared/ids.js"
import { parseHello, PROBE_BLANKS } from "../../src/shared/hello.js"
import { HANDSHAKE_LINE_MAX } from "../../src/shared/limits.js"
import { Finding, must, shrinkList, Target } from "./engine.js"
import { hex2, mutate, randomBytes, randomCuts, chunksOf, Rng, shrinkBytes, toHex } from "./gen.js"
import { refSplit } from "./targets.js"

type Op =
    | { k: "feed"; b: Buffer }
    | { k: "adv"; ms: number }
    | { k: "tick"; ms: number } // a timer that fires late (or early): now += ms, one handleTimeout
    | { k: "write"; n: number; qos: boolean; wait: boolean; bad: number }
    | { k: "read"; n: number }
    | { k: "reads"; on: boolean }
    | { k: "reopen" }
    | { k: "sockclose" }
    | { k: "close" }

interface LinkInput {
    role: "server" | "client"
    board: boolean
    clean: boolean // valid transcripts only, resends within 60 ids: nothing may be delivered twice
    opts: LinkOptions
    ops: Op[]
}

const EPOCHS = ["e1", "e2", "x", ""]
const NOTICES = ["bad-line", "too-long", "dropped", "duplicate", "resend", "stray-ack", "no-hello", "refused"]
const CLIENT_ID = "board-1"
const EPOCH = "self"

// What the peer of `role` sends on one socket, as valid lines.
function transcript(r: Rng, role: "server" | "client", maxLine: number, seq: { n: number; acked: number }, clean: string | undefined): Buffer {
    const lines: string[] = []
    // a clean peer is one program: devs-iot (with its one epoch) on every socket, or v1
    const peerDevs = clean !== undefined ? clean !== "v1" : r.chance(60)
    if (role === "server") {
        if (peerDevs) for (let i = 0; i < 10; i++) lines.push("")
        if (peerDevs && (clean !== undefined || r.chance(85))) lines.push("!hello epoch=" + (clean ?? r.pick(EPOCHS)))
    } else {
        if (peerDevs) lines.push("!hello epoch=" + (clean ?? r.pick(EPOCHS)))
        else lines.push("")
    }
    const n = r.skewed(60)
    for (let i = 0; i < n; i++) {
        const a = r.int(10)
        if (a < 4) {
            const len = r.chance(10) ? maxLine - 2 + r.int(5) : 1 + r.skewed(Math.min(maxLine, 40))
            const resend = r.chance(10)
            let s = resend ? seq.n - r.int(Math.min(seq.n, 130) + 1) : seq.n++
            if (clean !== undefined && resend) {
                // a clean sender resends within its window, and never its 00
                // (a v1 receiver takes a 00 that opens a socket for a restart: documented, fault 1)
                s = seq.n > 1 ? seq.n - 1 - r.int(Math.min(seq.n - 1, 60)) : seq.n++
            }
            lines.push(hex2(wireId(Math.max(0, s))) + "p" + s + "-" + "x".repeat(Math.max(0, len - 3 - ("" + s).length)))
        } else if (a < 7) lines.push(hex2(wireId(r.chance(80) ? seq.acked++ : r.int(300))))
        else if (a < 9) lines.push("")
        // bad lines; "0A\u00e9" is a message with an id out of the sender's window (not clean)
        else lines.push(r.pick(["!hello epoch=" + r.pick(EPOCHS), "zz", "0", "!x", clean === undefined ? "0A\u00e9" : "zz\u00e9"]))
    }
    return Buffer.from(lines.join("\n") + "\n")
}

function genLink(r: Rng): LinkInput {
    const role = r.chance(50) ? "server" : "client"
    const board = r.chance(40)
    const maxLineBytes = r.chance(60) ? 16 + r.skewed(60) : r.pick([16, 64, 256, 2048])
    const opts: LinkOptions = {
        timeout: r.pick([100, 400, 1000, 2000]),
        maxLineBytes: maxLineBytes,
        window: r.chance(50) ? 1 + r.int(8) : r.pick([16, 64, 120]),
        maxInflightBytes: r.chance(50) ? 16 + r.skewed(400) : 1048576,
        maxQueuedLines: 1 + r.skewed(40),
        maxQueuedBytes: maxLineBytes + r.skewed(2000),
        maxReceivedLines: 1 + r.skewed(20),
        maxReceivedBytes: maxLineBytes + r.skewed(500),
        maxWriteBytes: 64 + r.skewed(2000),
        warmup: r.pick([0, 50, 200]),
        onFull: r.chance(50) ? "pause" : "drop",
        maxBacklogBytes: r.skewed(600),
        keepaliveEvents: r.chance(50),
    }
    const ops: Op[] = []
    const seq = { n: r.chance(70) ? 0 : r.int(600), acked: 0 }
    const sockets = 1 + r.skewed(3)
    const clean = r.chance(30)
    const epoch = r.chance(40) ? "v1" : r.pick(EPOCHS)
    for (let s = 0; s < sockets; s++) {
        if (s > 0) ops.push(r.chance(50) ? { k: "reopen" } : { k: "sockclose" })
        let b = !clean && r.chance(8) ? randomBytes(r, r.skewed(300)) : transcript(r, role, maxLineBytes, seq, clean ? epoch : undefined)
        if (!clean && r.chance(75)) b = mutate(r, b, maxLineBytes + 2, 1 + r.skewed(8))
        let cuts = randomCuts(r, b.length)
        // A devs-iot client writes its probe in one write with its id line,
        // so it arrives whole; split and late, the server rightly takes the
        // peer for v1 on that socket, and a clean peer would not then send
        // its hello there.
        if (clean && role === "server") cuts = cuts.filter((c) => c >= PROBE_BLANKS)
        for (const c of chunksOf(b, cuts)) {
            ops.push({ k: "feed", b: c })
            const extra = r.skewed(3)
            for (let i = 0; i < extra; i++) {
                const a = r.int(10)
                if (a < 3) ops.push({ k: "adv", ms: r.chance(20) ? r.int(3 * (opts.timeout as number)) : r.skewed(300) })
                else if (a < 4) ops.push({ k: "tick", ms: r.skewed(3 * (opts.timeout as number)) })
                else if (a < 7) ops.push({ k: "write", n: 1 + r.skewed(maxLineBytes + 2), qos: r.chance(70), wait: r.chance(50), bad: r.chance(5) ? r.int(3) : -1 })
                else if (a < 9) ops.push({ k: "read", n: r.skewed(8) })
                else ops.push({ k: "reads", on: r.chance(50) })
            }
        }
        if (r.chance(50)) ops.push({ k: "adv", ms: r.int(3 * (opts.timeout as number)) })
    }
    if (r.chance(10)) ops.push({ k: "close" })
    ops.push({ k: "adv", ms: 3 * (opts.timeout as number) })
    return { role: role, board: board, clean: clean, opts: opts, ops: ops }
}

interface Sock {
    fed: Buffer[]
    fedBytes: number
    lines: number // "\n" fed
    sent: { b: Buffer; linesFed: number; bytesFed: number }[]
}

function runLink(x: LinkInput): void {
    const cfg = resolveConfig(x.opts, x.board ? boardDefaults() : nodeDefaults())
    const link: Link = x.role === "server" ? new ServerLink(cfg, EPOCH) : new ClientLink(cfg, EPOCH, CLIENT_ID)
    const lim = cfg.maxLineBytes + 2
    // Lines up to frameLim are framed whole (handshake lines pass at any
    // line limit); those over lim are refused by their length.
    const frameLim = Math.max(lim, HANDSHAKE_LINE_MAX)
    let now = 0
    let up = false
    let reads = true
    const written = new Set<string>() // payloads the application wrote
    const pendingTickets = new Set<number>()
    const doneTickets = new Set<number>()
    const delivered: string[] = []
    const socks: Sock[] = []
    let sock: Sock | undefined = undefined
    let held: Buffer[] = [] // bytes a paused Node driver has not read yet
    let allowance = 0 // bytes fed since the link last had everything framed
    let counter = 0

    const inside = link as unknown as { inboxBytes: number; conn: { backlogBytes: number } | undefined; sender: { queue: { size(): number }; live: number } }

    const open = () => {
        link.open(now)
        if (hasSocket(link)) {
            sock = { fed: [], fedBytes: 0, lines: 0, sent: [] }
            socks.push(sock)
        }
        held = []
        allowance = 0
    }
    const linesFed = (s: Sock) => s.lines
    const event = (e: LinkEvent) => {
        switch (e.type) {
            case "up":
                must(!up, "up while up")
                must(e.peer === "v1" || e.peer === "devs-iot", "up with peer " + e.peer)
                up = true
                return
            case "down":
                must(up, "down while down")
                must(typeof e.reason === "string", "down without reason")
                up = false
                return
            case "close":
                must(!hasSocket(link), "close event but the link still has a socket")
                return
            case "written":
            case "failed":
                must(pendingTickets.has(e.ticket), e.type + " for ticket " + e.ticket + (doneTickets.has(e.ticket) ? " completed before" : " never issued"))
                pendingTickets.delete(e.ticket)
                doneTickets.add(e.ticket)
                if (e.type === "failed") must(e.error && e.error.code === "ECLOSED", "failed with " + (e.error && e.error.code))
                return
            case "readable":
            case "keepalive":
                return
            case "notice":
                must(NOTICES.indexOf(e.code) >= 0 && typeof e.detail === "string", "notice " + e.code)
                // A client refuses what is no server it knows: a first line that is not one.
                must(e.code !== "refused" || x.role === "client", "a server's link told refused")
                return
            default:
                throw new Finding("unknown event " + JSON.stringify(e))
        }
    }
    const bounds = () => {
        must(readable(link) <= cfg.maxReceivedLines, "receive queue holds " + readable(link) + " lines, max " + cfg.maxReceivedLines)
        must(inside.inboxBytes <= cfg.maxReceivedBytes, "receive queue holds " + inside.inboxBytes + " bytes, max " + cfg.maxReceivedBytes)
        const c = inside.conn
        if (c) {
            const maxBacklog = cfg.onFull === "drop" ? cfg.maxBacklogBytes : cfg.maxBacklogBytes + lim
            must(c.backlogBytes <= maxBacklog, "backlog of " + c.backlogBytes + " bytes, max " + maxBacklog)
        }
        must(link.unframed() <= frameLim + allowance, "framer holds " + link.unframed() + " bytes, limit " + frameLim + " + " + allowance + " not yet framed")
        must(inside.sender.queue.size() <= cfg.maxQueuedLines, "send queue " + inside.sender.queue.size())
        must(inside.sender.live <= cfg.window, "in flight " + inside.sender.live + ", window " + cfg.window)
        must(link.status() === up, "status() " + link.status() + " but events say " + up)
        const t = link.pollTimeout()
        must(t === -1 || (Number.isFinite(t) && t >= 0), "pollTimeout " + t)
        must(hasSocket(link) || t === -1, "deadline without a socket")
    }
    const pump = () => {
        for (let round = 0; ; round++) {
            must(round < 10000, "pump does not settle")
            if (sock && held.length > 0 && wantsRead(link)) {
                const b = held.shift() as Buffer
                feedNow(b)
            }
            let steps = 0
            while (link.step(now)) must(++steps < 100000, "step() never returns false")
            if (hasSocket(link) && !(cfg.onFull === "pause" && !wantsRead(link))) allowance = 0
            for (let i = 0; ; i++) {
                must(i < 100000, "pollTransmit never returns undefined")
                const b = link.pollTransmit(now)
                if (b === undefined) break
                must(sock !== undefined && hasSocket(link), "bytes to send without a socket")
                const s = sock as Sock
                s.sent.push({ b: b, linesFed: linesFed(s), bytesFed: s.fedBytes })
            }
            for (let i = 0; ; i++) {
                must(i < 1000000, "pollEvent never returns undefined")
                const e = link.pollEvent()
                if (e === undefined) break
                event(e)
                if (e.type === "close") sock = undefined
            }
            if (!hasSocket(link)) {
                sock = undefined
                held = []
            }
            while (reads) {
                const s = link.read(now)
                if (s === undefined) break
                delivered.push(s)
            }
            link.release()
            bounds()
            if (!(sock && held.length > 0 && wantsRead(link))) break
        }
    }
    const feedNow = (b: Buffer) => {
        const s = sock as Sock
        s.fed.push(b)
        s.fedBytes += b.length
        for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) s.lines++
        allowance += b.length
        link.receive(b, now)
    }
    const advance = (ms: number) => {
        const end = now + ms
        let still = 0
        for (let i = 0; i < 100000; i++) {
            const t = link.pollTimeout()
            if (t < 0 || t > end) break
            if (t > now) {
                now = t
                still = 0
            } else must(++still < 100, "deadline " + t + " stays in the past at " + now)
            link.handleTimeout(now)
            pump()
        }
        now = end
        pump()
    }

    open()
    pump()
    for (const op of x.ops) {
        switch (op.k) {
            case "feed":
                if (!sock) break
                if (cfg.onFull === "pause" && (!wantsRead(link) || held.length > 0)) held.push(op.b)
                else feedNow(op.b)
                break
            case "adv":
                advance(op.ms)
                break
            case "tick":
                now += op.ms
                link.handleTimeout(now)
                break
            case "write": {
                let p = "w" + counter++ + "-"
                p += "y".repeat(Math.max(0, op.n - p.length))
                if (op.bad === 0) p = ""
                else if (op.bad === 1) p = p + "\n" + p
                else if (op.bad === 2) p = p + "\u00e9".repeat(cfg.maxLineBytes)
                try {
                    const t = link.write(p, op.qos, op.wait)
                    must(op.bad < 0 && Buffer.byteLength(p) <= cfg.maxLineBytes, "write accepted a bad line (" + op.bad + ", " + Buffer.byteLength(p) + " bytes)")
                    must(!pendingTickets.has(t) && !doneTickets.has(t), "ticket " + t + " issued twice")
                    pendingTickets.add(t)
                    written.add(p)
                } catch (e) {
                    if (e instanceof Finding) throw e
                    const code = (e as { code?: string }).code
                    const ok =
                        code === "EQUEUEFULL" ||
                        (code === "ECLOSED" && isClosed(link)) ||
                        (code === "EEMPTY" && op.bad === 0) ||
                        (code === "ENEWLINE" && op.bad === 1) ||
                        (code === "ETOOLONG" && Buffer.byteLength(p) > cfg.maxLineBytes)
                    must(ok, "write threw " + code + ": " + (e as Error).message)
                }
                break
            }
            case "read":
                for (let i = 0; i < op.n; i++) {
                    const s = link.read(now)
                    if (s === undefined) break
                    delivered.push(s)
                }
                link.release()
                break
            case "reads":
                reads = op.on
                break
            case "reopen":
                open()
                break
            case "sockclose":
                link.socketClosed(now, "fuzz: socket closed")
                sock = undefined
                held = []
                pump()
                if (!isClosed(link)) open()
                break
            case "close":
                link.close(now)
                break
        }
        pump()
    }
    while (true) {
        const s = link.read(now)
        if (s === undefined) break
        delivered.push(s)
    }
    checkTranscripts(x, socks, written, delivered, lim, frameLim)
}

function checkTranscripts(x: LinkInput, socks: Sock[], written: Set<string>, delivered: string[], lim: number, frameLim: number): void {
    const messages: string[] = []
    const rxIds = new Map<number, number>() // message lines received per id, on this socket and earlier ones
    const acks = new Map<number, number>()
    for (let si = 0; si < socks.length; si++) {
        const s = socks[si]
        const all = Buffer.concat(s.fed)
        const split = refSplit(all)
        const rx = split.lines
        // end offset of each line framed whole (<= frameLim bytes), for "a complete line had arrived"
        const readableEnds: number[] = []
        {
            let off = 0
            for (const l of rx) {
                off += l.length + 1
                if (l.length <= frameLim) readableEnds.push(off)
            }
        }
        // A line past the framer's limit is answered once it is past it, even before its end.
        const answerable = split.partial.length > frameLim ? rx.concat([split.partial]) : rx
        for (const l of answerable) {
            if (l.length < 3) continue
            const id = parseInt(l.subarray(0, 2).toString("latin1"), 16)
            if (!/^[0-9a-fA-F]{2}$/.test(l.subarray(0, 2).toString("latin1"))) continue
            // An over-long message is answered too (ACK or !toolong), never delivered.
            rxIds.set(id, (rxIds.get(id) ?? 0) + 1)
            if (l.length <= lim && l !== split.partial) messages.push(l.subarray(2).toString("utf-8"))
        }
        let sentAny = false
        let hellos = 0
        for (let ti = 0; ti < s.sent.length; ti++) {
            const t = s.sent[ti]
            const where = "socket " + si + ", transmit " + ti + ": "
            let lines = refSplit(t.b)
            must(lines.partial.length === 0, where + "a transmit ends inside a line")
            let ls = lines.lines
            if (x.role === "client" && ti === 0) {
                const want = Buffer.from(CLIENT_ID + "\n" + "\n".repeat(10))
                must(t.b.subarray(0, want.length).equals(want), where + "the client does not start with its id and probe: " + toHex(t.b.subarray(0, 40)))
                ls = ls.slice(11)
            }
            for (const l of ls) {
                const text = l.toString("utf-8")
                if (l.length === 0) {
                    sentAny = true
                    continue
                }
                const refusal = /^!toolong id=([0-9a-f]{2}) max=(\d+)$/.exec(text)
                if (refusal) {
                    must(+refusal[2]! === lim - 2, where + "refusal with another limit: " + text)
                    const id = parseInt(refusal[1]!, 16)
                    acks.set(id, (acks.get(id) ?? 0) + 1)
                    must((acks.get(id) as number) <= (rxIds.get(id) ?? 0), where + "refusal " + text + " for " + (rxIds.get(id) ?? 0) + " message lines received")
                    sentAny = true
                    continue
                }
                if (l[0] === 0x21) {
                    must(text === "!hello epoch=" + EPOCH + " max=" + (lim - 2), where + "extension line " + JSON.stringify(text))
                    hellos++
                    must(hellos === 1, where + "second hello on a socket")
                    const fed = rx
                    if (x.role === "server") {
                        must(!sentAny, where + "hello after the server had sent something")
                        must(t.linesFed >= 10, where + "hello after " + t.linesFed + " lines")
                        for (let i = 0; i < 10; i++) must(fed[i].length === 0, where + "hello to a client whose line " + i + " was not blank: " + toHex(fed[i]))
                    } else {
                        // lines the framer cuts are skipped before the client's first line
                        const first = fed.filter((l) => l.length <= frameLim)[0]
                        must(first !== undefined && parseHello(first.toString("utf-8")) !== undefined, where + "hello to a server whose first line was not one")
                    }
                    sentAny = true
                    continue
                }
                must(/^[0-9a-f]{2}/.test(l.subarray(0, 2).toString("latin1")), where + "line without a lowercase hex id: " + toHex(l))
                if (x.role === "client") must(readableEnds.length > 0 && readableEnds[0] <= t.bytesFed, where + "message or ACK before any complete line from the server")
                if (x.role === "server") must(t.bytesFed >= 1, where + "message or ACK before any byte from the client")
                sentAny = true
                if (l.length === 2) {
                    const id = parseInt(text, 16)
                    acks.set(id, (acks.get(id) ?? 0) + 1)
                    must((acks.get(id) as number) <= (rxIds.get(id) ?? 0), where + "ACK " + text + " sent " + acks.get(id) + " times for " + (rxIds.get(id) ?? 0) + " message lines received")
                } else must(written.has(l.subarray(2).toString("utf-8")), where + "message not written by the application: " + toHex(l.subarray(0, 40)))
            }
        }
    }
    if (x.clean) {
        const once = new Set<string>()
        for (const d of delivered) {
            const m = /^p(\d+)-/.exec(d)
            if (!m) continue
            must(!once.has(m[1]), "message of seq " + m[1] + " delivered twice from a clean transcript")
            once.add(m[1])
        }
    }
    // delivered: a subsequence of the message lines received
    let j = 0
    for (let i = 0; i < delivered.length; i++) {
        while (j < messages.length && messages[j] !== delivered[i]) j++
        must(j < messages.length, "delivered line " + i + " " + JSON.stringify(delivered[i].slice(0, 40)) + " was not received as a message, or out of order")
        j++
    }
}

function feedBytes(x: LinkInput): Buffer {
    return Buffer.concat(x.ops.map((o) => (o.k === "feed" ? o.b : Buffer.alloc(0))))
}

export const linkTarget: Target<LinkInput> = {
    name: "link",
    what: "server and client Link fed mutated transcripts at random times: no throw, bounded buffers, only received messages delivered, well-formed output and events",
    gen: genLink,
    check: runLink,
    shrink(x, fails) {
        let cur = x
        const ops = shrinkList(cur.ops, (o) => fails({ ...cur, ops: o }), 300)
        cur = { ...cur, ops: ops }
        for (let i = 0; i < cur.ops.length; i++) {
            const op = cur.ops[i]
            if (op.k !== "feed") continue
            const b = shrinkBytes(op.b, (nb) => {
                const o2 = cur.ops.slice()
                o2[i] = { k: "feed", b: nb }
                return fails({ ...cur, ops: o2 })
            }, 150)
            const o3 = cur.ops.slice()
            o3[i] = { k: "feed", b: b }
            cur = { ...cur, ops: o3 }
        }
        return cur
    },
    show(x) {
        const ops = x.ops.map((o) => (o.k === "feed" ? "feed " + toHex(o.b) : o.k === "adv" ? "adv " + o.ms : o.k === "tick" ? "tick " + o.ms : o.k === "write" ? "write " + o.n + (o.qos ? " qos" : "") + (o.wait ? " wait" : "") + (o.bad >= 0 ? " bad" + o.bad : "") : o.k === "read" ? "read " + o.n : o.k === "reads" ? "reads " + o.on : o.k))
        return x.role + (x.clean ? " clean" : "") + (x.board ? " (board defaults)" : " (node defaults)") + " opts " + JSON.stringify(x.opts) + "; ops: " + ops.join("; ") + "; all bytes fed " + toHex(feedBytes(x))
    },
}
