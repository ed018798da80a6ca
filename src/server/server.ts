// The devs-iot server: accepts sockets, reads each one's id line (sending
// nothing before it has), and hands the socket to that id's persistent
// Connection. Sockets are read as events, one per callback, so a silent or
// slow socket never holds up another (fault 8).
//
// Hostile input: until its link is up, a socket is unauthenticated
// and bounded: its id line in length (maxIdBytes) and time (idTimeout, from
// accept, whatever bytes arrive), its lines per second until the server
// first writes to it (maxEarlyLineRate), and how many such sockets one
// address and all addresses may hold (admission.ts). An offender is cut and
// logged once; warning logs are rate-limited (maxWarningsPerSecond) so a
// flood cannot flood the log.
import { EventEmitter } from "node:events"
import { createServer, type Server as NetServer, type Socket } from "node:net"
import { checkClientId, IdReader, idProblem, kcvOf, rekeyLine, LinkError, nodeDefaults, ProbeRefusal, refusalLine, resolveConfig, ServerAuth, type AuthOutcome, type LinkConfig, type LinkOptions } from "../shared/index.js"
import { intIn, PORT, type Range } from "../shared/config.js"
import { SERVER_BOUNDS } from "../shared/bounds.js"
import { Admission, LogBudget, type AdmissionLimits } from "./admission.js"
import { Connection } from "./connection.js"
import { clock } from "./clock.js"
import { isStateError, STATE_REFUSED } from "./driver.js"
import { keyFrom } from "./keys.js"
import { nodeCrypto } from "./nodecrypto.js"
import { silentLogger, type Logger } from "./log.js"
import type { StateStore } from "./state.js"
import { listenOn } from "./listen.js"
import { enlist, refusedWait, type WaitOptions, type Waiting } from "./abort.js"
import { checkOptionKeys, LINK_KEYS, type OptionKeys } from "./options.js"
import type { Warning } from "./warning.js"

// An id line that is not UTF-8 (its warning does not repeat the id).
const NOT_UTF8 = "id is not valid UTF-8"

// Not made in accept(): a closure made there holds all of accept()'s
// scope (the id reader, ...) for as long as the socket lives.
const ignore = (): void => undefined

// The port a server listens on: 0 picks a free one.
export const LISTEN_PORT: Range = { min: 0, max: 65535, dflt: PORT.dflt }

export interface ServerOptions extends LinkOptions {
    port?: number // the port to listen on (default 8123); 0 picks a free one (see server.port)
    host?: string // the address to listen on (default "0.0.0.0")
    expected?: readonly string[] // ids the application expects (waitAll's default)
    strictIds?: boolean // refuse ids not in `expected`
    logger?: Logger
    // Per-client keys (32 bytes or 64 hex digits). A keyed id must
    // authenticate (docs/security.md), unless it is in allowPlain.
    keys?: KeyTable
    revoked?: readonly string[] // ids refused whatever they send (the key file's "<id> revoked")
    allowPlain?: readonly string[] // keyed ids that may still connect without authenticating
    encrypt?: boolean // encrypt the messages sent on authenticated links (AES-256-CCM)
    // Push an id's next key (the key file's second) to a board that
    // authenticated with its first (docs/security.md, "Key push over the link").
    pushKeys?: boolean
    limits?: HostileLimits
    // Where each id's delivery state lives (state.ts: openState): default
    // none, in memory with its link; on disk it survives a restart.
    state?: StateStore
    // The epoch a new Connection for `id` starts its id sequence in, or
    // undefined for a random one. For a relay that continues the sequence
    // of another server (the MQTT gateway, docs/protocol.md).
    epochFor?: (id: string) => string | undefined
    // A relay's own rule for ids (the MQTT gateway: one topic level): why
    // `id` is refused, or "". Refused like any bad id, before its handshake.
    idProblem?: (id: string) => string
}

// The keys new Server() takes; any other is refused (options.ts).
export const SERVER_KEYS: OptionKeys<ServerOptions> = {
    ...LINK_KEYS,
    port: true,
    host: true,
    expected: true,
    strictIds: true,
    logger: true,
    keys: true,
    revoked: true,
    allowPlain: true,
    encrypt: true,
    pushKeys: true,
    limits: true,
    state: true,
    epochFor: true,
    idProblem: true,
}

// Limits on unauthenticated sockets (docs/security.md, "Hostile input"). Each is
// checked like the link options: a bad value throws ECONFIG naming it.
export interface HostileLimits {
    idTimeout?: number // ms from accept to a complete id line (default 2 x timeout); bytes do not extend it
    maxIdBytes?: number // longest id line (default 256 = MAX_ID_BYTES, the most any devs-iot client sends; up to 65536)
    maxEarlyLineRate?: number // lines per second a socket may send before the server's first byte (default 64)
    maxPending?: number // unauthenticated sockets in all (default 8192)
    maxPendingPerSource?: number // unauthenticated sockets per source address (default 2048)
    penaltyOffences?: number // offences in a window that penalize a source (default 10)
    penaltyWindow?: number // ms in which penaltyOffences are counted (default 60000)
    penalizedPending?: number // a penalized source's cap (default 16)
    maxWarningsPerSecond?: number // warning log lines per second; the rest are counted in a summary (default 20)
    maxClients?: number // ids kept: Connections, and with a state folder the ids stored there by earlier runs; beyond it a new id evicts the stored id seen longest ago, then the id down longest, that is neither keyed nor expected, or is refused (default 20000)
    // After the link is up, and on id creation: rows of PEER_BOUNDS (shared/config.ts).
    maxUnsentBytes?: number
    unsentTime?: number
    lineBudget?: number
    byteBudget?: number
    floodTime?: number
    newIdRate?: number
    newIdBurst?: number
}

export type ResolvedLimits = Required<HostileLimits>

// An id's key: one key, or `keys` (two during a rotation, either
// authenticates) with `encrypt` (the id must encrypt, both directions).
export type KeyValue = Buffer | string | { keys: Array<Buffer | string>; encrypt?: boolean }
export type KeyTable = Map<string, KeyValue> | Record<string, KeyValue>
// Why a Connection was dropped ("forget"): forget() let it go (a take-over
// at another gateway), it was evicted for room, or its link never came up.
export type ForgetReason = "let-go" | "evicted" | "never-up"

interface KeyEntry {
    keys: Buffer[]
    encrypt: boolean
}

// What the server knows of a socket's client when it refuses it.
type PeerKind = "devs-iot" | "v1" | "unknown"

// The key a live authenticated socket proved, and what it was told to do.
interface SessionKey {
    key: Buffer
    mustEncrypt: boolean
}

const LIMIT_KEYS = Object.fromEntries(SERVER_BOUNDS.map((b) => [b.name, true]))

export function resolveLimits(l: HostileLimits | undefined, timeout: number): ResolvedLimits {
    const o = l ?? {}
    checkOptionKeys(o, LIMIT_KEYS, "new Server()", "limits.")
    const given = o as Record<string, unknown>
    const out: Record<string, number> = {}
    for (const b of SERVER_BOUNDS) out[b.name] = intIn(b.name, given[b.name], b.name === "idTimeout" ? 2 * timeout : b.dflt, b.min, b.max)
    const r = out as unknown as ResolvedLimits
    if (r.penalizedPending > r.maxPendingPerSource)
        throw new LinkError("ECONFIG", `penalizedPending (${r.penalizedPending}) must be at most maxPendingPerSource (${r.maxPendingPerSource})`)
    return r
}

// One unauthenticated socket: accepted, its link not up yet.
interface Early {
    socket: Socket
    source: string
    address: string
    conn?: Connection // once its id line is read
    lines: number // in the current second
    linesAt: number
    timer?: NodeJS.Timeout // the id deadline
    cut: boolean
    // accept()'s "close" listener: removed once the link is up, with the
    // id reader and the early handlers it holds (~0.8 KB a socket).
    closed?: () => void
}

export type { Warning } from "./warning.js"

export declare interface Server {
    on(event: "connect", listener: (conn: Connection) => void): this
    on(event: "disconnect", listener: (conn: Connection, reason: string) => void): this
    on(event: "warning", listener: (w: Warning) => void): this
    on(event: "listening", listener: (port: number) => void): this
    // An id's Connection dropped (forget(), evicted for room, or never up): what holds it lets go.
    on(event: "forget", listener: (conn: Connection, why: ForgetReason) => void): this
    once(event: "connect", listener: (conn: Connection) => void): this
    once(event: "disconnect", listener: (conn: Connection, reason: string) => void): this
    once(event: "warning", listener: (w: Warning) => void): this
    once(event: "listening", listener: (port: number) => void): this
    once(event: "forget", listener: (conn: Connection, why: ForgetReason) => void): this
    off(event: "connect", listener: (conn: Connection) => void): this
    off(event: "disconnect", listener: (conn: Connection, reason: string) => void): this
    off(event: "warning", listener: (w: Warning) => void): this
    off(event: "listening", listener: (port: number) => void): this
    off(event: "forget", listener: (conn: Connection, why: ForgetReason) => void): this
}

export class Server extends EventEmitter {
    /** @internal */
    readonly cfg: LinkConfig
    readonly host: string
    readonly expected: readonly string[]
    readonly strictIds: boolean
    readonly limits: ResolvedLimits
    private wantedPort: number
    private boundPort = -1
    private log: Logger
    private net: NetServer
    private conns = new Map<string, Connection>()
    private pending = new Set<Socket>() // sockets whose id line is not read yet
    private early = new Map<Socket, Early>() // unauthenticated: link not up yet (includes `pending`)
    private admission: Admission<Early>
    private logBudget: LogBudget
    private summaryTimer: NodeJS.Timeout | undefined
    private sweeper: NodeJS.Timeout | undefined
    private hostile = { cut: 0, refused: 0 } // offenders cut, sockets refused at accept
    private arrivals = new Map<string, Array<{ resolve: (c: Connection) => void; reject: (e: Error) => void }>>()
    private expectedSet: Set<string>
    // Ids that may make room for a new one (neither keyed, expected nor ever
    // authenticated), down longest first: Map keeps insertion order.
    private idle = new Map<string, number>() // id -> down since (ms)
    // Ids the state holds records of and no Connection here (an earlier
    // life's, or one forgotten since): they count toward maxClients too, and
    // make room first, seen longest ago first (the state's order across
    // restarts): an earlier life's id was seen before any idle one.
    private stored = new Set<string>()
    private eventLog: RateLog // info lines of connects and outages
    private noticeLog: RateLog // debug lines of link notices (duplicates, bad lines, ...)
    private stateLog: RateLog // error lines of writes the state folder refused (a full disk)
    private closing = false
    private closed: Promise<void> | undefined // close(), once called
    private opening: Promise<void> | undefined // listen() calls under way or done, settled either way
    private binding = 0 // listen() calls under way
    private keys = new Map<string, KeyEntry>()
    private revoked = new Set<string>() // refused: listed as revoked, or removed by a reload
    private removed = new Set<string>() // ids a reload removed (revoked until listed again or "open")
    private listedRevoked = new Set<string>() // ids the keys list as revoked
    private sessionKeys = new Map<Connection, SessionKey>() // for connections on an authenticated socket
    private allowPlain: Set<string>
    readonly encrypt: boolean
    readonly pushKeys: boolean
    private pushed = new WeakMap<Connection, string>() // key pushed on the live socket: its check value
    private keysPushedCount = 0
    private state: StateStore | undefined
    private epochFor: ((id: string) => string | undefined) | undefined
    private idProblem: ((id: string) => string) | undefined

    constructor(opts: ServerOptions = {}) {
        super()
        checkOptionKeys(opts, SERVER_KEYS, "new Server()")
        this.cfg = resolveConfig(opts, nodeDefaults())
        this.wantedPort = intIn("port", opts.port, LISTEN_PORT.dflt, LISTEN_PORT.min, LISTEN_PORT.max)
        if (opts.host !== undefined && (typeof opts.host !== "string" || opts.host === ""))
            throw new LinkError("ECONFIG", "host must be a non-empty string")
        this.host = opts.host ?? "0.0.0.0"
        const expected = opts.expected ?? []
        if (!Array.isArray(expected)) throw new LinkError("ECONFIG", "expected must be an array of client ids")
        for (const id of expected) {
            const p = checkClientId(id)
            if (p !== "") throw new LinkError("ECONFIG", `expected id ${JSON.stringify(id)}: ${p}`)
        }
        this.expected = [...expected]
        this.expectedSet = new Set(expected)
        this.strictIds = opts.strictIds ?? false
        if (this.strictIds && expected.length === 0) throw new LinkError("ECONFIG", "strictIds needs a list of expected ids")
        this.limits = resolveLimits(opts.limits, this.cfg.timeout)
        this.admission = new Admission<Early>(this.limits as AdmissionLimits)
        this.logBudget = new LogBudget(this.limits.maxWarningsPerSecond)
        this.log = opts.logger ?? silentLogger()
        const per = this.limits.maxWarningsPerSecond
        this.eventLog = new RateLog(per, (skipped, n) => this.log.info({ code: "events-skipped", skipped }, `${n} connection events not logged (over ${per}/s)`))
        this.noticeLog = new RateLog(per, (skipped, n) => this.log.debug({ code: "notices-skipped", skipped }, `${n} link notices not logged (over ${per}/s)`))
        this.stateLog = new RateLog(per, (_, n) => this.log.error({ code: "ESTATE", skipped: n }, `${n} more connections closed with nothing sent: the state folder refuses writes (not logged: over ${per}/s)`))
        this.allowPlain = new Set(opts.allowPlain ?? [])
        if (opts.keys !== undefined || opts.revoked !== undefined) this.setKeys(opts.keys ?? {}, opts.revoked)
        this.encrypt = opts.encrypt ?? false
        this.pushKeys = opts.pushKeys ?? false
        this.state = opts.state
        for (const id of this.state?.ids?.() ?? []) this.stored.add(id)
        this.epochFor = opts.epochFor
        this.idProblem = opts.idProblem
        this.net = createServer({ noDelay: true }, (s) => this.accept(s))
    }

    // The bound port (after listen()).
    get port(): number {
        return this.boundPort
    }

    // Rejects with ECLOSED once close() was called: a closed Server stays
    // closed (make a new one, also on the same port).
    listen(): Promise<void> {
        if (this.closing) return Promise.reject(new LinkError("ECLOSED", "server closed"))
        this.binding++
        const p = this.bind().finally(() => this.binding--)
        // close() waits for it: a close() while it is under way would
        // otherwise settle neither, and leave the port open.
        const prev = this.opening
        this.opening = Promise.all([prev, p.catch(() => {})]).then(() => {})
        return p
    }

    private async bind(): Promise<void> {
        // A folder written with a larger maxClients, or by an older version
        // (which let stored ids pile up): down to the cap before any id comes.
        while (this.conns.size + this.stored.size > this.limits.maxClients && this.dropStored("more ids stored than maxClients")) {}
        await listenOn(this.net, this.wantedPort, this.host, this.log, "accepting a connection failed")
        const a = this.net.address()
        this.boundPort = typeof a === "object" && a ? a.port : this.wantedPort
        this.log.info({ host: this.host, port: this.boundPort, timeout: this.cfg.timeout }, "listening")
        this.emit("listening", this.boundPort)
        this.sweeper = setInterval(() => this.admission.sweep(clock()), this.limits.penaltyWindow)
        this.sweeper.unref()
    }

    // Counters of the hostile-input limits: unauthenticated sockets now,
    // offenders cut and sockets refused at accept since start.
    hostileStats(): { pending: number; unauthenticated: number; sources: number; cut: number; refused: number } {
        return { pending: this.pending.size, unauthenticated: this.early.size, sources: this.admission.tracked, ...this.hostile }
    }

    // The Connection of `id`, once that id has connected (original: client_conn),
    // or a rejection when `opts.signal` aborts. An id no client can connect
    // with is refused (ECONFIG) rather than waited for forever.
    clientConn(id: string, opts?: WaitOptions | null): Promise<Connection> {
        const refused = refusedWait("clientConn()", opts)
        if (refused) return refused
        const c = this.conns.get(id)
        if (c && c.connects > 0) return Promise.resolve(c)
        if (this.closing) return Promise.reject(new LinkError("ECLOSED", "server closed"))
        const p = this.idLineProblem(id)
        if (p !== "") return Promise.reject(new LinkError("ECONFIG", `clientConn(${JSON.stringify(id)}): ${p}`))
        if (this.strictIds && !this.expectedSet.has(id)) return Promise.reject(new LinkError("ECONFIG", `clientConn(${JSON.stringify(id)}): not an expected id, and strictIds refuses it`))
        const list = this.arrivals.get(id) ?? []
        this.arrivals.set(id, list)
        return enlist<Connection, Waiting<Connection>>(
            list,
            opts,
            (resolve, reject) => ({ resolve, reject }),
            () => list.length === 0 && this.arrivals.get(id) === list && this.arrivals.delete(id),
        )
    }

    // Why no client can connect with `id`, or "": what the id line's reader
    // (IdReader: length, control bytes) and refusedId() refuse.
    private idLineProblem(id: string): string {
        if (typeof id !== "string") return "id must be a string"
        const b = Buffer.from(id)
        if (b.length > this.limits.maxIdBytes) return `id is ${b.length} bytes, more than maxIdBytes (${this.limits.maxIdBytes})`
        const p = idProblem(b)
        return p !== "" ? p : this.refusedId(id)
    }

    // Why an id the reader took is refused, or "".
    private refusedId(id: string): string {
        // An original board's id is a MicroPython str, so valid UTF-8.
        if (id.includes("\uFFFD")) return NOT_UTF8
        return this.idProblem?.(id) ?? ""
    }

    // Resolves once every listed id (default: the expected ids) has connected.
    async waitAll(ids: readonly string[] = this.expected, opts?: WaitOptions | null): Promise<void> {
        await Promise.all(ids.map((id) => this.clientConn(id, opts)))
    }

    connection(id: string): Connection | undefined {
        return this.conns.get(id)
    }

    // Forgets an id's Connection (its socket closed, pending writes and reads
    // rejected with ECLOSED): a gateway lets go of a board another took over.
    forget(id: string, reason: string): boolean {
        const conn = this.conns.get(id)
        if (conn === undefined) return false
        this.conns.delete(id)
        conn.disconnect(reason) // its "disconnect" sees no Connection for the id
        this.drop(conn, "let-go")
        if (this.state?.has?.(id) === true) this.stored.add(id)
        return true
    }

    // The last of a Connection no longer in `conns`.
    private drop(conn: Connection, why: ForgetReason): void {
        this.idle.delete(conn.id)
        this.sessionKeys.delete(conn)
        conn.shutdown()
        this.emit("forget", conn, why)
    }

    connections(): Connection[] {
        return [...this.conns.values()]
    }

    // Stops listening and closes every link; pending writes and reads reject
    // with ECLOSED (original: close_all).
    // Every call returns the same promise: it resolves once all is closed.
    close(): Promise<void> {
        return (this.closed ??= this.shut())
    }

    private async shut(): Promise<void> {
        this.closing = true
        // Only a listen() under way is waited for: otherwise every link is
        // closed in this turn, as the call returns.
        if (this.binding > 0) await this.opening
        const closed = new Promise<void>((resolve) => this.net.close(() => resolve()))
        if (this.sweeper) clearInterval(this.sweeper)
        if (this.summaryTimer) clearTimeout(this.summaryTimer)
        this.eventLog.stop()
        this.noticeLog.stop()
        this.stateLog.stop()
        for (const s of this.pending) s.destroy()
        this.pending.clear()
        for (const c of this.conns.values()) c.shutdown()
        // Who waits for an id that will never come now.
        for (const list of this.arrivals.values()) for (const w of list.splice(0)) w.reject(new LinkError("ECLOSED", "server closed"))
        this.arrivals.clear()
        await closed
        this.log.info("closed")
    }

    // Replaces the keys (a reload; README, "Security"). New connections use
    // them at once, and every live connection they no longer admit is ended
    // (its client, if devs-iot, told why): one authenticated with a key no
    // longer listed, one on an id now revoked, a plain one on an id now keyed.
    // An id that had a key or was revoked, and is no longer listed, stays
    // refused (revoked) until it is listed again or listed in `open`. Returns the ids revoked by
    // this reload because they were removed, and the ids whose live
    // connection was ended. Throws ECONFIG for a bad key (nothing changes).
    setKeys(keys: KeyTable, revoked: readonly string[] = [], open: readonly string[] = []): { removed: string[]; ended: string[] } {
        const next = new Map<string, KeyEntry>()
        const entries = keys instanceof Map ? [...keys.entries()] : Object.entries(keys)
        for (const [id, v] of entries) next.set(id, keyEntry(id, v))
        for (const id of [...revoked, ...open])
            if (next.has(id)) throw new LinkError("ECONFIG", `id ${JSON.stringify(id)} is both keyed and ${revoked.includes(id) ? "revoked" : "open"}`)
        const removed = new Set(this.removed)
        const fresh: string[] = []
        for (const id of [...this.keys.keys(), ...this.listedRevoked])
            if (!next.has(id) && !open.includes(id) && !revoked.includes(id) && !removed.has(id)) {
                removed.add(id)
                fresh.push(id)
            }
        for (const id of [...next.keys(), ...open, ...revoked]) removed.delete(id)
        this.keys = next
        this.removed = removed
        this.listedRevoked = new Set(revoked)
        this.revoked = new Set([...revoked, ...removed])
        const ended: string[] = []
        for (const conn of this.conns.values()) {
            if (!conn.hasSocket()) continue
            const why = this.refusalNow(conn)
            if (why === "") continue
            ended.push(conn.id)
            this.warn({ code: "revoked", id: conn.id, address: conn.address, detail: `live connection ended by a key reload: ${why}` })
            this.countRefusal(why)
            conn.revoke(why)
        }
        return { removed: fresh, ended }
    }

    /** @internal */
    keyedIds(): string[] {
        return [...this.keys.keys()]
    }

    // `id` has a key: it connects authenticated (or, in --allow-plain, may not).
    /** @internal */
    isKeyed(id: string): boolean {
        return this.keys.has(id)
    }

    revokedIds(): string[] {
        return [...this.revoked]
    }

    // Which of its id's keys (1 or 2) the live connection of `id` proved, or
    // 0 when it is not on an authenticated socket: the operator's check that a
    // board has switched to its new key before the old one is removed.
    keyInUse(id: string): number {
        const c = this.conns.get(id)
        const sk = c && c.hasSocket() ? this.sessionKeys.get(c) : undefined
        if (sk === undefined) return 0
        const e = this.keys.get(id)
        const i = e ? e.keys.findIndex((k) => k.equals(sk.key)) : -1
        return i + 1
    }

    // Why the live connection of `conn` is no longer admitted by the keys, or "".
    private refusalNow(conn: Connection): string {
        if (this.revoked.has(conn.id)) return "revoked"
        const e = this.keys.get(conn.id)
        const sk = this.sessionKeys.get(conn)
        if (sk === undefined) return e !== undefined && !this.allowPlain.has(conn.id) ? "auth-required" : ""
        if (e === undefined || !e.keys.some((k) => k.equals(sk.key))) return "revoked"
        if (e.encrypt && !sk.mustEncrypt) return "encryption-required"
        return ""
    }

    // ---- inside

    private warn(w: Warning): void {
        try {
            this.emit("warning", w)
        } catch (e) {
            this.log.error({ code: w.code, client: w.id }, `a "warning" listener threw: ${errorText(e)}`)
        }
        if (!this.logBudget.take(w.code, clock())) {
            this.armSummary()
            return
        }
        this.log.warn({ code: w.code, client: w.id, address: w.address }, w.detail)
    }

    // Warnings the budget refused are logged as one line of counts, at most
    // every 5 s.
    private armSummary(): void {
        if (this.summaryTimer) return
        this.summaryTimer = setTimeout(() => {
            this.summaryTimer = undefined
            const skipped = this.logBudget.takeSkipped()
            if (skipped) this.log.warn({ code: "warnings-skipped", skipped }, `${Object.values(skipped).reduce((a, b) => a + b, 0)} warnings not logged (over ${this.limits.maxWarningsPerSecond}/s)`)
        }, 5000)
        this.summaryTimer.unref()
    }

    // An unauthenticated socket broke a rule: cut it, log it once, and count
    // an offence against its address.
    // `tell`: a refusal reason a devs-iot client is told (see refuseSocket).
    // `blame`: false when the refusal is the server's state, not the peer's
    // doing (full): a newcomer retrying is not penalized for it.
    private offend(e: Early, w: Warning, tell?: { reason: string; rest: Buffer[]; peer: PeerKind }, blame = true): void {
        if (e.cut) return
        e.cut = true
        this.hostile.cut++
        this.warn(w)
        if (tell) this.refuseSocket(e.socket, tell.rest, tell.reason, tell.peer)
        else e.socket.destroy()
        if (blame) this.offence(e)
    }

    // Closes a socket whose id line was read, telling a devs-iot client why
    // (refusal.ts); a v1 peer sees the socket close and nothing else. `peer`:
    // known from its handshake, or "unknown": its probe decides, within timeout/4.
    private refuseSocket(socket: Socket, rest: Buffer[], reason: string, peer: PeerKind): void {
        this.countRefusal(reason)
        const endWith = (b: Buffer) => {
            socket.end(b)
            setTimeout(() => socket.destroy(), 500).unref()
        }
        if (peer === "devs-iot") return endWith(Buffer.from(refusalLine(reason)))
        if (peer === "v1") return void socket.destroy()
        const r = new ProbeRefusal(reason, this.cfg.timeout, clock())
        let timer: NodeJS.Timeout | undefined
        const drive = () => {
            if (timer) clearTimeout(timer)
            timer = undefined
            const now = clock()
            const o = r.step(now)
            if (o === undefined) return void (timer = setTimeout(drive, Math.max(0, r.pollTimeout() - now)))
            socket.off("data", onData)
            const b = r.pollTransmit()
            if (o === "told" && b) endWith(b)
            else socket.destroy()
        }
        const onData = (b: Buffer) => {
            r.push(b)
            drive()
        }
        socket.on("data", onData)
        socket.once("close", () => timer && clearTimeout(timer))
        for (const b of rest) r.push(b)
        drive()
    }

    // Connections refused, by the reason a devs-iot client is (or would be) told.
    private refusalCounts = new Map<string, number>()

    private countRefusal(reason: string): void {
        this.refusalCounts.set(reason, (this.refusalCounts.get(reason) ?? 0) + 1)
    }

    // Keys pushed and confirmed by the board (!rekeyed) since start: for the metrics.
    /** @internal */
    keysPushed(): number {
        return this.keysPushedCount
    }

    // The delivery state's writes the disk refused, and whether it refuses
    // them now (a full disk): for the metrics. Zero and true in memory.
    /** @internal */
    stateWrites(): { failures: number; ok: boolean } {
        return { failures: this.state?.writeFailures ?? 0, ok: this.state?.writeError === undefined }
    }

    private onRekeyed(conn: Connection, kcv: string): void {
        const want = this.pushed.get(conn)
        if (want === undefined || want !== kcv) {
            this.warn({ code: "bad-line", id: conn.id, address: conn.address, detail: want === undefined ? "key push confirmed, but none was pushed on this connection: ignored" : "key push confirmed with another check value: the board may not hold the key" })
            return
        }
        this.pushed.delete(conn)
        this.keysPushedCount++
        this.log.info({ client: conn.id, address: conn.address }, "key pushed")
    }

    // Connections refused since start, by reason (refusal.ts): for the metrics.
    /** @internal */
    refusals(): ReadonlyMap<string, number> {
        return this.refusalCounts
    }

    // Counts an offence against the socket's address; enough of them penalize it.
    private offence(e: Early): void {
        this.offenceOf(e.source)
    }

    private offenceOf(source: string): void {
        if (this.admission.offence(source, clock()))
            this.warn({ code: "penalized", address: source, detail: `${this.limits.penaltyOffences} offences within ${this.limits.penaltyWindow} ms: at most ${this.limits.penalizedPending} unauthenticated connections from this address` })
    }

    // The socket's link came up, or it closed: it no longer counts.
    private settle(e: Early): void {
        if (this.early.get(e.socket) !== e) return
        this.early.delete(e.socket)
        this.admission.remove(e.source, e)
        if (e.timer) clearTimeout(e.timer)
        this.stopCounting(e)
        if (e.conn && this.earlyConn.get(e.conn) === e) this.earlyConn.delete(e.conn)
    }

    private stopCounting(e: Early): void {
        const count = this.counters.get(e)
        if (count) e.socket.off("data", count)
        this.counters.delete(e)
    }

    private counters = new Map<Early, (b: Buffer) => void>()
    private earlyConn = new Map<Connection, Early>() // the unauthenticated socket a Connection was handed

    private accept(socket: Socket): void {
        if (this.closing) return void socket.destroy()
        const ra = socket.remoteAddress
        if (ra === undefined) return void socket.destroy() // gone already
        const source = ra.startsWith("::ffff:") ? ra.slice(7) : ra
        const address = `${ra}:${socket.remotePort}`
        socket.on("error", ignore) // "close" follows; the Connection logs link errors
        const e: Early = { socket, source, address, lines: 0, linesAt: clock(), cut: false }
        const a = this.admission.add(source, e, clock())
        if (!a.ok) {
            this.hostile.refused++
            this.warn({ code: "pending-limit", address, detail: `refused: ${a.reason}` })
            return void socket.destroy()
        }
        if (a.evicted) {
            const old = a.evicted
            this.warn({ code: "evicted", address: old.address, detail: `closed to make room: ${this.limits.maxPending} unauthenticated connections and this address misbehaved` })
            old.cut = true
            this.settle(old)
            old.socket.destroy()
        }
        this.early.set(socket, e)
        const reader = new IdReader(this.limits.maxIdBytes)
        this.pending.add(socket)
        const t = setTimeout(() => {
            // After the I/O poll, as a link's deadlines (LinkDriver): an id
            // line that came while the process was stalled is read first.
            setImmediate(() => {
                if (e.timer !== t || this.early.get(socket) !== e) return
                e.timer = undefined
                this.offend(e, { code: "id-timeout", address, detail: `no id line within ${this.limits.idTimeout} ms` })
            })
        }, this.limits.idTimeout)
        e.timer = t
        const idDone = () => {
            if (e.timer) clearTimeout(e.timer)
            e.timer = undefined
            this.pending.delete(socket)
            socket.off("data", onData)
        }
        const onData = this.guarded(socket, address, (b: Buffer) => {
            reader.push(b)
            const r = reader.next()
            if (r === undefined) return
            idDone()
            if (r.kind === "bad") return void this.offend(e, { code: "bad-id", address, detail: r.reason })
            const problem = this.refusedId(r.id)
            if (problem !== "") return void this.offend(e, { code: "bad-id", id: problem === NOT_UTF8 ? undefined : r.id, address, detail: problem })
            if (e.cut) return
            this.route(r.id, socket, r.rest, address, e)
        })
        // Counts lines until the server first writes (see route); registered
        // first, so a flood is cut before its chunk is framed.
        const count = this.guarded(socket, address, (b: Buffer) => {
            const now = clock()
            if (now - e.linesAt >= 1000) {
                e.linesAt = now
                e.lines = 0
            }
            for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) e.lines++
            if (e.lines > this.limits.maxEarlyLineRate)
                this.offend(e, { code: "flood", id: e.conn?.id, address, detail: `more than ${this.limits.maxEarlyLineRate} lines in a second before the server's first line` })
        })
        this.counters.set(e, count)
        socket.on("data", count)
        socket.on("data", onData)
        e.closed = () => {
            idDone()
            this.settle(e)
        }
        socket.once("close", e.closed)
    }

    private route(id: string, socket: Socket, rest: Buffer[], address: string, e: Early): void {
        if (this.revoked.has(id)) {
            this.warn({ code: "revoked", id, address, detail: "id revoked by the key file: refused" })
            return this.refuseSocket(socket, rest, "revoked", "unknown")
        }
        if (this.expected.length > 0 && !this.expected.includes(id)) {
            if (this.strictIds) return void this.offend(e, { code: "refused-id", id, address, detail: "id not in the expected list: refused" }, { reason: "unknown-id", rest, peer: "unknown" })
            this.warn({ code: "unexpected-id", id, address, detail: "id not in the expected list: accepted" })
        }
        // Before the server's first byte an honest client sends only its id,
        // the probe's blank lines and keepalives (docs/protocol.md, "Handshake");
        // after it, it may send its queued messages at once (a window of 64
        // and more). So lines are counted until the server first writes.
        const write = socket.write
        socket.write = ((...args: Parameters<Socket["write"]>) => {
            socket.write = write
            this.stopCounting(e)
            return write.apply(socket, args)
        }) as Socket["write"]
        const key = this.keys.get(id)
        if (key !== undefined) return this.authenticate(id, key, socket, rest, address, e)
        let conn = this.conns.get(id)
        if (!conn) {
            // An id keeps its Connection while it is down (an application
            // may hold it), so ids nobody configured are bounded: how fast
            // one address creates them, and how many are kept; at the cap the
            // id down longest that is neither keyed nor expected makes room.
            if (!this.expectedSet.has(id)) {
                if (!this.admission.newId(e.source, clock()))
                    return void this.offend(e, { code: "id-rate", id, address, detail: `new client ids from this address over ${this.limits.newIdRate} a second (burst ${this.limits.newIdBurst}): a new id refused` })
                // A stored id already counts.
                const held = this.conns.size + this.stored.size
                if (!this.stored.has(id) && held >= this.limits.maxClients && !this.makeRoom())
                    return void this.offend(e, { code: "too-many-clients", id, address, detail: `already ${held} client ids (maxClients), none down that may make room: a new id refused` }, { reason: "server-full", rest, peer: "unknown" }, false)
            }
            conn = this.newConnection(id)
        } else if (!this.mayReplace(conn, id, socket, address, rest, "unknown")) return
        this.idle.delete(id)
        e.conn = conn
        this.earlyConn.set(conn, e)
        this.sessionKeys.delete(conn)
        conn.adopt(socket, { kind: "id", rest })
        this.forgetIfNeverUp(socket, id, conn)
    }

    // A Connection whose link never came up holds nothing an application
    // saw: forget it with its socket, so ids sent by strangers (garbage
    // lines, port scanners) do not pile up. (Made here, not in route(): a
    // closure holds its function's whole scope while the socket lives.)
    private forgetIfNeverUp(socket: Socket, id: string, c: Connection): void {
        socket.once("close", () => {
            if (c.hasSocket() || this.conns.get(id) !== c) return
            if (c.connects === 0) {
                this.conns.delete(id)
                this.drop(c, "never-up")
                if (this.state?.has?.(id) === true) this.stored.add(id) // a stored id that failed its handshake
            } else if (!this.idle.has(id) && this.mayEvict(id, c)) this.idle.set(id, clock()) // gone again before its link came up
        })
    }

    // A keyed id: the challenge runs on the new socket before it reaches the
    // id's Connection, so a newcomer takes over a live link only once it has
    // proved the key (fault 9).
    private authenticate(id: string, key: KeyEntry, socket: Socket, rest: Buffer[], address: string, e: Early): void {
        const conn = this.conns.get(id) ?? this.newConnection(id)
        const auth = new ServerAuth(nodeCrypto, id, key.keys, conn.epoch, this.cfg.timeout, this.encrypt, clock(), key.encrypt, this.cfg.maxLineBytes)
        this.pending.add(socket)
        let timer: NodeJS.Timeout | undefined
        let finished = false
        const finish = (o: AuthOutcome) => {
            finished = true
            if (timer) clearTimeout(timer)
            this.pending.delete(socket)
            socket.off("data", onData)
            socket.off("close", closed) // it holds the handshake (keys, session) while the socket lives
            this.authDone(id, conn, socket, o, address, e, key.keys)
        }
        const drive = () => {
            if (finished) return
            const now = clock()
            const o = auth.step(now) ?? auth.handleTimeout(now)
            for (let b = auth.pollTransmit(); b !== undefined; b = auth.pollTransmit()) socket.write(b)
            if (o !== undefined) return finish(o)
            if (timer) clearTimeout(timer)
            const due = auth.pollTimeout()
            if (due >= 0) timer = setTimeout(this.guarded(socket, address, drive), Math.max(0, due - clock()))
        }
        const onData = this.guarded(socket, address, (b: Buffer) => {
            auth.push(b)
            drive()
        })
        const closed = () => {
            if (finished) return
            finished = true
            if (timer) clearTimeout(timer)
            this.pending.delete(socket)
        }
        socket.on("data", onData)
        socket.once("close", closed)
        for (const b of rest) auth.push(b)
        drive()
    }

    private authDone(id: string, conn: Connection, socket: Socket, o: AuthOutcome, address: string, e: Early, keys: Buffer[]): void {
        if (socket.destroyed || this.closing) return void socket.destroy()
        if (o.kind === "fail") {
            this.warn({ code: "auth-failed", id, address, detail: `authentication failed: ${o.reason}: connection closed` })
            if (o.reason.startsWith("wrong key")) this.countRefusal("wrong-key")
            this.offence(e)
            // end, not destroy: a refusal line may still be on its way.
            socket.end()
            setTimeout(() => socket.destroy(), 500).unref()
            return
        }
        if (o.kind === "auth") {
            const used = keys[o.keyIndex]!
            // The keys were reloaded while it authenticated: that key may be gone.
            const now = this.keys.get(id)
            if (this.revoked.has(id) || now === undefined || !now.keys.some((k) => k.equals(used))) {
                this.warn({ code: "revoked", id, address, detail: "authenticated with a key a reload removed: refused" })
                this.countRefusal("revoked")
                // Its proof is sent: the client reads sealed lines from here on.
                socket.end(o.session.seal(Buffer.from("!refused revoked")))
                return void setTimeout(() => socket.destroy(), 500).unref()
            }
            if (conn.hasSocket()) this.warn({ code: "take-over", id, address, detail: `an authenticated connection replaces the one from ${conn.address}` })
            if (this.eventLog.allow("authenticated")) this.log.info({ client: id, address, key: o.keyIndex + 1 }, "client authenticated")
            this.idle.delete(id)
            e.conn = conn
            this.earlyConn.set(conn, e)
            this.sessionKeys.set(conn, { key: used, mustEncrypt: o.mustEncrypt })
            conn.adopt(socket, o)
            this.pushed.delete(conn)
            // Only to a board on the current key, once per connection, after its link is up.
            const next = now.keys[1]
            if (this.pushKeys && next !== undefined && now.keys[0]!.equals(used) && conn.pushKey(rekeyLine(nodeCrypto, next, id)))
                this.pushed.set(conn, kcvOf(nodeCrypto, next, id))
            return
        }
        const what = o.kind === "hello" ? "a devs-iot client without a key" : "a v1 client (no authentication)"
        if (!this.allowPlain.has(id))
            return void this.offend(e, { code: "auth-refused", id, address, detail: `keyed id connected as ${what}: refused (not in the allowed-plain list)` }, { reason: "auth-required", rest: o.rest, peer: o.kind === "hello" ? "devs-iot" : "v1" })
        if (!this.mayReplace(conn, id, socket, address, o.rest, o.kind === "hello" ? "devs-iot" : "v1")) return
        this.sessionKeys.delete(conn)
        this.idle.delete(id)
        e.conn = conn
        this.earlyConn.set(conn, e)
        conn.adopt(socket, o.kind === "hello" ? o : { kind: "id", rest: o.rest })
    }

    // Fault 9: a plain newcomer for an id whose link has a socket takes over
    // only a silent one; otherwise it is refused (and its socket closed).
    private mayReplace(conn: Connection, id: string, socket: Socket, address: string, rest: Buffer[], peer: PeerKind): boolean {
        if (!conn.hasSocket()) return true
        if (!conn.mayTakeOver()) {
            this.warn({ code: "duplicate-id", id, address, detail: `id already connected from ${conn.address}: refused` })
            this.refuseSocket(socket, rest, "id-in-use", peer)
            return false
        }
        this.warn({ code: "take-over", id, address, detail: `replaces a silent connection from ${conn.address}` })
        return true
    }

    // Forgets the id down longest that may make room (neither keyed,
    // expected nor ever authenticated); false if there is none.
    private makeRoom(): boolean {
        if (this.dropStored("to make room for a new id")) return true
        for (const [id, since] of this.idle) {
            this.idle.delete(id)
            const conn = this.conns.get(id)
            if (conn === undefined || conn.hasSocket() || conn.status() || !this.mayEvict(id, conn)) continue
            this.conns.delete(id)
            this.drop(conn, "evicted")
            this.state?.remove(id)
            this.warn({ code: "id-evicted", id, address: conn.address, detail: `down for ${Math.round((clock() - since) / 1000)} s: forgotten to make room for a new id (maxClients ${this.limits.maxClients})` })
            return true
        }
        return false
    }

    // Forgets the stored id seen longest ago that is neither keyed nor
    // expected, as makeRoom() an idle one: every record goes, its owed lines
    // too. (Whether it ever authenticated died with the process that saw it.)
    private dropStored(why: string): boolean {
        for (const id of this.stored) {
            if (this.keys.has(id) || this.expectedSet.has(id)) continue
            this.stored.delete(id)
            this.state?.remove(id)
            this.warn({ code: "id-evicted", id, detail: `stored, no connection since the server started or since it was let go: forgotten with its state, ${why} (maxClients ${this.limits.maxClients})` })
            return true
        }
        return false
    }

    private mayEvict(id: string, conn: Connection): boolean {
        return !this.keys.has(id) && !this.expectedSet.has(id) && !conn.everAuthenticated
    }

    // One set of listeners and one log gate for every Connection (`this` is
    // the Connection): an idle id holds no closures of its own.
    private readonly hooks = (() => {
        const server = this
        return {
            status(this: Connection, up: boolean, reason?: string) {
                server.onStatus(this, up, reason)
            },
            warning(this: Connection, w: Warning) {
                server.warn(w)
                // A peer cut by the bounds after its handshake offends like
                // one cut before it: its address is penalized as often.
                if (w.code === "flood" || w.code === "slow-reader") server.offenceOf(sourceOf(this.address))
            },
            rekeyed(this: Connection, kcv: string) {
                server.onRekeyed(this, kcv)
            },
            logGate(kind: string) {
                if (kind === STATE_REFUSED) return server.stateLog.allow(kind)
                return kind === "link-lost" ? server.eventLog.allow(kind) : server.noticeLog.allow(kind)
            },
        }
    })()

    // One socket's handler: an exception closes that socket and is logged;
    // the process and every other link go on.
    private guarded<A extends unknown[]>(socket: Socket, address: string, fn: (...a: A) => void): (...a: A) => void {
        return (...a: A) => {
            try {
                fn(...a)
            } catch (e) {
                if (!isStateError(e)) this.log.error({ address, stack: (e as Error)?.stack }, `error while handling a connection, closed: ${errorText(e)}`)
                else if (this.stateLog.allow(STATE_REFUSED)) this.log.error({ address, code: e.code }, `connection closed, nothing sent: ${e.message}`)
                socket.destroy()
            }
        }
    }

    private newConnection(id: string): Connection {
        const conn = new Connection(id, this.cfg, this.log, this.limits, this.hooks.logGate, this.state, this.epochFor?.(id))
        this.stored.delete(id)
        this.conns.set(id, conn)
        conn.on("status", this.hooks.status)
        conn.on("warning", this.hooks.warning)
        conn.on("rekeyed", this.hooks.rekeyed)
        return conn
    }

    private onStatus(conn: Connection, up: boolean, reason?: string): void {
        const id = conn.id
        this.state?.seen?.(id)
        if (up) {
            this.idle.delete(id)
            const e = this.earlyConn.get(conn)
            if (e) {
                this.settle(e)
                if (e.closed) e.socket.off("close", e.closed)
                e.closed = undefined
            }
            if (this.eventLog.allow("connect")) this.log.info({ client: id, address: conn.address, peer: conn.peer, connects: conn.connects }, "link up")
            for (const w of this.arrivals.get(id)?.splice(0) ?? []) w.resolve(conn)
            this.arrivals.delete(id)
            this.emit("connect", conn)
        } else {
            if (this.mayEvict(id, conn) && this.conns.get(id) === conn) {
                this.idle.delete(id)
                this.idle.set(id, clock())
            }
            const why = this.closing ? "server shutting down" : reason
            if (this.eventLog.allow("disconnect")) this.log.info({ client: id, address: conn.address, reason: why }, "link down")
            this.emit("disconnect", conn, reason ?? "")
        }
    }
}

// Log lines of one kind, at most `perSecond` (LogBudget); what it refuses is
// counted and reported by `flush` in one line at most every 5 s.
class RateLog {
    private budget: LogBudget
    private timer: NodeJS.Timeout | undefined

    constructor(perSecond: number, private flush: (skipped: Record<string, number>, total: number) => void) {
        this.budget = new LogBudget(perSecond)
    }

    allow(kind: string): boolean {
        if (this.budget.take(kind, clock())) return true
        if (!this.timer) {
            this.timer = setTimeout(() => {
                this.timer = undefined
                const skipped = this.budget.takeSkipped()
                if (skipped) this.flush(skipped, Object.values(skipped).reduce((a, b) => a + b, 0))
            }, 5000)
            this.timer.unref()
        }
        return false
    }

    stop(): void {
        if (this.timer) clearTimeout(this.timer)
        this.timer = undefined
    }
}

function keyEntry(id: string, v: KeyValue): KeyEntry {
    const what = `key of ${JSON.stringify(id)}`
    try {
        if (typeof v === "object" && !Buffer.isBuffer(v) && v !== null) {
            if (!Array.isArray(v.keys) || v.keys.length < 1 || v.keys.length > 2) throw new Error(`${what}: keys must list one or two keys`)
            return { keys: v.keys.map((k, i) => keyFrom(k, `${what} #${i + 1}`)), encrypt: v.encrypt === true }
        }
        return { keys: [keyFrom(v, what)], encrypt: false }
    } catch (e) {
        throw new LinkError("ECONFIG", (e as Error).message)
    }
}

// The address part of "<address>:<port>", IPv4-mapped IPv6 as IPv4 (as accept() keys sources).
function sourceOf(address: string): string {
    const a = address.slice(0, address.lastIndexOf(":"))
    return a.startsWith("::ffff:") ? a.slice(7) : a
}

function errorText(e: unknown): string {
    return e instanceof Error ? e.message : String(e)
}
