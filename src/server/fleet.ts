// What the server knows of its boards, for the status API, the metrics and
// the dashboard. It only listens to the Server's events and reads each
// Connection's counters when asked, so it costs nothing per line.
import { EventEmitter } from "node:events"
import type { Connection } from "./connection.js"
import type { Server, Warning } from "./server.js"
import type { Report } from "../shared/index.js"

// Outage reasons are free text (they name timeouts, error codes): metrics
// and charts get one of these kinds instead, so labels stay few.
export const OUTAGE_KINDS = ["timeout", "closed-by-peer", "socket-error", "taken-over", "auth", "no-hello", "operator", "shutdown", "other"] as const
type OutageKind = (typeof OUTAGE_KINDS)[number]

export function outageKind(reason: string): OutageKind {
    if (reason.startsWith("nothing received")) return "timeout"
    if (reason === "closed by peer") return "closed-by-peer"
    if (reason.startsWith("socket error")) return "socket-error"
    if (reason.startsWith("taken over") || reason.startsWith("replaced")) return "taken-over"
    if (reason.startsWith("authentication")) return "auth"
    if (reason.startsWith("no hello")) return "no-hello"
    if (reason === "disconnected by the operator") return "operator"
    if (reason === "closed by the application") return "shutdown"
    return "other"
}

export const AUTH_FAILURES = ["wrong-key", "timeout", "handshake", "sealed-line", "plain-refused", "http-token"] as const
type AuthFailure = (typeof AUTH_FAILURES)[number]

// The kind of an authentication warning, or undefined for another warning.
function authFailure(w: Warning): AuthFailure | undefined {
    if (w.code === "auth-refused") return "plain-refused"
    if (w.code !== "auth-failed") return undefined
    // The server's handshake says "authentication failed: <reason>"; a
    // link's sealed line that did not verify says only the reason.
    if (!w.detail.startsWith("authentication failed")) return "sealed-line"
    if (w.detail.includes("wrong key")) return "wrong-key"
    if (w.detail.includes("no answer")) return "timeout"
    return "handshake"
}

// Warnings that mean a limit was reached (README, "Hostile input").
export const CAPS: ReadonlyArray<Warning["code"]> = ["pending-limit", "evicted", "penalized", "too-many-clients", "id-rate", "flood", "slow-reader", "too-long", "id-timeout"]

// What a board reports of itself (report.ts), as the server last got it.
export interface BoardReport {
    firmware: string
    uptime: number // s
    heap: number | null // free bytes
    rssi: number | null // dBm
    reconnects: number
    reset: string | null
    at: string // when it arrived (ISO)
}

export interface BoardStatus {
    id: string
    up: boolean
    since: string | null // when it last came up or went down (ISO), as this server saw it
    address: string
    peer: string | null // "devs-iot" or "v1" once up
    roundTripMs: number | null // smoothed
    queuedOut: number // lines waiting to go to the board, or un-ACKed
    queuedIn: number // lines from the board the application has not read
    connects: number
    reconnects: number
    outages: number
    lastReason: string | null
    linesIn: number
    linesOut: number
    bytesIn: number
    bytesOut: number
    resent: number
    duplicates: number
    report: BoardReport | null
    log: string[] // its last console lines from over-the-air sessions, oldest first
    exception: BoardException | null // the last exception those sessions brought
}

// An unhandled exception on the board, as an over-the-air session reported it.
export interface BoardException {
    name: string
    message: string
    at: string // when it arrived (ISO)
}

// The console lines kept per board, and the length kept of each (and of an
// exception's name and message): a board cannot grow the server's memory.
export const BOARD_LOG_LINES = 20
export const BOARD_LOG_CHARS = 256

export interface FleetTotals {
    boards: number
    up: number
    connects: number
    linesIn: number
    linesOut: number
    bytesIn: number
    bytesOut: number
    resent: number
    duplicates: number
    dropped: number
    refused: number
    queueFull: number
    roundTripMs: number | null // mean of the boards' smoothed round trips
}

// The totals that are counters.
type Counts = Omit<FleetTotals, "boards" | "up" | "roundTripMs">

function addCounts(t: Counts, c: Connection): void {
    t.connects += c.connects
    const x = c.traffic
    t.linesIn += x.linesIn
    t.linesOut += x.linesOut
    t.bytesIn += x.bytesIn
    t.bytesOut += x.bytesOut
    t.refused += x.refused
    t.queueFull += x.queueFull
    const s = c.stats
    t.resent += s.resent
    t.duplicates += s.duplicates
    t.dropped += s.dropped
}

interface Seen {
    since: number // Date.now()
    outages: number
    lastReason: string | null
    report: BoardReport | null
    log: string[]
    exception: BoardException | null
}

export declare interface Fleet {
    on(event: "change", listener: (id: string) => void): this
    on(event: "roundtrip", listener: (ms: number) => void): this
}

export class Fleet extends EventEmitter {
    readonly server: Server
    readonly outages = new Map<OutageKind, number>()
    readonly warnings = new Map<Warning["code"], number>()
    readonly authFailures = new Map<AuthFailure, number>()
    private seen = new Map<string, Seen>()
    private offs: Array<() => void> = []
    private reportOffs = new Map<Connection, () => void>() // the report listener on each Connection

    constructor(server: Server) {
        super()
        this.server = server
        const onRoundTrip = (ms: number) => this.emit("roundtrip", ms)
        this.listen("connect", (conn: Connection) => {
            conn.onRoundTrip = onRoundTrip
            if (!this.reportOffs.has(conn)) {
                const onReport = (r: Report) => this.setReport(conn.id, r)
                conn.on("report", onReport)
                this.reportOffs.set(conn, () => conn.off("report", onReport))
            }
            const s = this.entry(conn.id)
            s.since = Date.now()
            this.emit("change", conn.id)
        })
        this.listen("disconnect", (conn: Connection, reason: string) => {
            const s = this.entry(conn.id)
            s.since = Date.now()
            s.outages++
            s.lastReason = reason
            const k = outageKind(reason)
            this.outages.set(k, (this.outages.get(k) ?? 0) + 1)
            this.emit("change", conn.id)
        })
        // The server let go of the Connection: so does the fleet, and of its id's entry.
        this.listen("forget", (conn: Connection) => {
            if (conn.connects > 0) this.retire(conn)
            this.reportOffs.get(conn)?.()
            this.reportOffs.delete(conn)
            if (this.server.connection(conn.id) === undefined) this.seen.delete(conn.id)
        })
        this.listen("warning", (w: Warning) => {
            this.warnings.set(w.code, (this.warnings.get(w.code) ?? 0) + 1)
            const a = authFailure(w)
            if (a !== undefined) this.countAuthFailure(a)
        })
    }

    // Stops listening to the server.
    detach(): void {
        for (const off of this.offs.splice(0)) off()
        for (const off of this.reportOffs.values()) off()
        this.reportOffs.clear()
    }

    board(id: string): BoardStatus | undefined {
        const c = this.server.connection(id)
        return c && c.connects > 0 ? this.status(c) : undefined
    }

    // Boards that have been up at least once, in the order they first came.
    *boards(): Generator<BoardStatus> {
        for (const c of this.server.connections()) if (c.connects > 0) yield this.status(c)
    }

    /** @internal */
    countAuthFailure(a: AuthFailure): void {
        this.authFailures.set(a, (this.authFailures.get(a) ?? 0) + 1)
    }

    // A console line from the board's over-the-air session; kept only for
    // ids that have come up (so bounded like the Connections).
    /** @internal */
    boardLog(id: string, text: string): void {
        const s = this.seen.get(id)
        if (!s) return
        s.log.push(text.slice(0, BOARD_LOG_CHARS))
        if (s.log.length > BOARD_LOG_LINES) s.log.splice(0, s.log.length - BOARD_LOG_LINES)
        this.emit("change", id)
    }

    /** @internal */
    boardException(id: string, name: string, message: string): void {
        const s = this.seen.get(id)
        if (!s) return
        s.exception = { name: name.slice(0, BOARD_LOG_CHARS), message: message.slice(0, BOARD_LOG_CHARS), at: new Date().toISOString() }
        this.emit("change", id)
    }

    private setReport(id: string, r: Report): void {
        this.entry(id).report = {
            firmware: r.firmware,
            uptime: r.uptime,
            heap: r.heap ?? null,
            rssi: r.rssi ?? null,
            reconnects: r.reconnects,
            reset: r.reset ?? null,
            at: new Date().toISOString(),
        }
        this.emit("change", id)
    }

    // Counters since start (the Connections' own, and those of Connections
    // the server let go of); boards, up and roundTripMs are of now.
    totals(): FleetTotals {
        const r = this.retired
        const t: FleetTotals = { ...r, boards: 0, up: 0, roundTripMs: null }
        let rtSum = 0
        let rtN = 0
        for (const c of this.server.connections()) {
            if (c.connects === 0) continue
            t.boards++
            if (c.status()) t.up++
            if (c.traffic.roundTrip >= 0 && c.status()) {
                rtSum += c.traffic.roundTrip
                rtN++
            }
            addCounts(t, c)
        }
        if (rtN > 0) t.roundTripMs = Math.round((rtSum / rtN) * 10) / 10
        return t
    }

    // The counts of Connections the server let go of (evicted for room,
    // forgotten): kept, so the metrics' counters never go down as ids come
    // and go (Prometheus reads a counter that goes down as a restart).
    private retired: Counts = { connects: 0, linesIn: 0, linesOut: 0, bytesIn: 0, bytesOut: 0, resent: 0, duplicates: 0, dropped: 0, refused: 0, queueFull: 0 }

    private retire(c: Connection): void {
        addCounts(this.retired, c)
    }

    private status(c: Connection): BoardStatus {
        const s = this.seen.get(c.id)
        const x = c.traffic
        const q = c.queued()
        return {
            id: c.id,
            up: c.status(),
            since: s ? new Date(s.since).toISOString() : null,
            address: c.address,
            peer: c.peer ?? null,
            roundTripMs: x.roundTrip >= 0 ? Math.round(x.roundTrip * 10) / 10 : null,
            queuedOut: q.out,
            queuedIn: q.in,
            connects: c.connects,
            reconnects: Math.max(0, c.connects - 1),
            outages: s ? s.outages : 0,
            lastReason: s ? s.lastReason : null,
            linesIn: x.linesIn,
            linesOut: x.linesOut,
            bytesIn: x.bytesIn,
            bytesOut: x.bytesOut,
            resent: c.stats.resent,
            duplicates: c.stats.duplicates,
            report: s ? s.report : null,
            log: s ? s.log.slice() : [],
            exception: s ? s.exception : null,
        }
    }

    // Entries exist only for ids that came up, so they are bounded like the
    // server's Connections (maxClients).
    private entry(id: string): Seen {
        let s = this.seen.get(id)
        if (!s) {
            s = { since: Date.now(), outages: 0, lastReason: null, report: null, log: [], exception: null }
            this.seen.set(id, s)
        }
        return s
    }

    private listen(event: string, f: (...args: never[]) => void): void {
        this.server.on(event as "connect", f as () => void)
        this.offs.push(() => this.server.off(event as "connect", f as () => void))
    }
}
