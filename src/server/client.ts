// The Node client: the board's API on Linux, for gateways, tests and
// benchmarks. It connects, and after any outage reconnects forever with
// capped, jittered back-off (fault 7).
import { randomBytes } from "node:crypto"
import { connect, type Socket } from "node:net"
import { Backoff, checkClientId, ClientLink, confirmKey, LinkError, linkAuth, setAuth, nextServer, parseServers, nodeDefaults, reportProblem, resolveConfig, useStore, type LinkOptions, type Report } from "../shared/index.js"
import { intIn, PORT } from "../shared/config.js"
import { clock } from "./clock.js"
import { LinkDriver } from "./driver.js"
import { keyFrom } from "./keys.js"
import { nodeCrypto } from "./nodecrypto.js"
import { silentLogger, type Logger } from "./log.js"
import { PEER_BOUNDS } from "../shared/bounds.js"
import type { PeerBounds } from "./driver.js"
import { LogBudget } from "./admission.js"

// Warnings a minute about over-long lines, each way.
const LINE_WARNINGS = 10
import type { StateStore } from "./state.js"
import { checkOptionKeys, LINK_KEYS, type OptionKeys } from "./options.js"

export interface ClientOptions extends LinkOptions {
    id: string // unique per client: the server tells links apart by it
    host?: string // the server's address (default "127.0.0.1"), or several ("a:9000,b"): the next is tried when a connect fails or brings no link up
    port?: number // the server's port (default 8123), for addresses that name none
    onStatus?: (up: boolean, reason?: string) => void // as the "status" event: a reason when down
    logger?: Logger
    backoffFirst?: number // ms before the first retry (default 100), doubling...
    backoffCap?: number // ...up to this (default 2000)
    // Authentication: this client's key (32 bytes or 64 hex digits). With a key the
    // client authenticates, and refuses a server that does not.
    key?: Buffer | string
    encrypt?: boolean // encrypt the messages this client sends (needs key)
    // Where the delivery state lives (state.ts: openState): default none, in
    // memory with the link; on disk a restarted client process neither reads
    // a line twice nor loses one it owed.
    state?: StateStore
}

// The keys new Client() takes; any other is refused (options.ts).
const CLIENT_KEYS: OptionKeys<ClientOptions> = {
    ...LINK_KEYS,
    id: true,
    host: true,
    port: true,
    onStatus: true,
    logger: true,
    backoffFirst: true,
    backoffCap: true,
    key: true,
    encrypt: true,
    state: true,
}

// "status", and "rekey": the server pushed this client's next key (its check
// value), used from the next connection on. A client has no "report" or
// "rekeyed": only a server's link (Connection) gets those.
export declare interface Client {
    on(event: "status", listener: (up: boolean, reason?: string) => void): this
    once(event: "status", listener: (up: boolean, reason?: string) => void): this
    off(event: "status", listener: (up: boolean, reason?: string) => void): this
    on(event: "rekey", listener: (kcv: string) => void): this
    once(event: "rekey", listener: (kcv: string) => void): this
    off(event: "rekey", listener: (kcv: string) => void): this
}

export class Client extends LinkDriver<ClientLink> {
    readonly id: string
    host: string // the address tried now
    port: number
    private servers: Array<{ host: string; port: number }>
    private at = 0
    private connectsBefore = 0 // links completed before the current socket
    private backoff: Backoff
    private encrypt = false
    private started = false
    private closed = false
    private closing: Promise<void> | undefined // close(), once called
    private connecting: Socket | undefined
    private retry: NodeJS.Timeout | undefined
    private failures = 0
    private failingSince = 0
    private refusal = "" // what the server's last refusal said, logged with the retry
    private refusalCode = "refused" // "auth": the refusal is a failed authentication
    private lineWarnings = new LogBudget(LINE_WARNINGS, 60000)

    constructor(opts: ClientOptions) {
        checkOptionKeys(opts, CLIENT_KEYS, "new Client()")
        const problem = checkClientId(opts?.id)
        if (problem !== "") throw new LinkError("ECONFIG", `id: ${problem}`)
        const cfg = resolveConfig(opts, nodeDefaults())
        const log = opts.logger ?? silentLogger()
        // A new epoch per client process: its id sequence starts at 00 here,
        // unless the delivery state holds one from an earlier life.
        const saved = opts.state?.load(opts.id)
        super(new ClientLink(cfg, saved?.link.epoch ?? randomBytes(4).toString("hex"), opts.id), log.child({ client: opts.id }))
        if (opts.state) {
            this.state = opts.state
            useStore(this.link, opts.state.forId(opts.id), saved)
        }
        this.id = opts.id
        if (opts.key !== undefined) {
            let key: Buffer
            try {
                key = keyFrom(opts.key, "key")
            } catch (e) {
                throw new LinkError("ECONFIG", (e as Error).message)
            }
            setAuth(this.link, linkAuth(nodeCrypto, key, opts.encrypt ?? false))
            this.encrypt = opts.encrypt ?? false
        } else if (opts.encrypt) throw new LinkError("ECONFIG", "encrypt needs a key")
        if (opts.host !== undefined && (typeof opts.host !== "string" || opts.host === ""))
            throw new LinkError("ECONFIG", "host must be a non-empty string")
        const sl = parseServers(opts.host ?? "127.0.0.1", intIn("port", opts.port, PORT.dflt, PORT.min, PORT.max))
        if (sl.problem !== "") throw new LinkError("ECONFIG", `host: ${sl.problem}`)
        this.servers = sl.list
        this.host = sl.list[0]!.host
        this.port = sl.list[0]!.port
        const first = intIn("backoffFirst", opts.backoffFirst, 100, 1, 600000)
        this.backoff = new Backoff(first, intIn("backoffCap", opts.backoffCap, 2000, first, 600000))
        // Whatever answers at the address may flood or never read: bounded as
        // the server bounds its clients (its defaults; the output cap above
        // a full window in flight, which an honest server drains).
        const b: Record<string, number> = {}
        for (const r of PEER_BOUNDS) b[r.name] = r.dflt
        b["maxUnsentBytes"] = Math.max(b["maxUnsentBytes"]!, 2 * cfg.maxInflightBytes)
        this.setBounds(b as unknown as PeerBounds)
        if (opts.onStatus) this.on("status", opts.onStatus)
        this.on("status", (up: boolean, reason?: string) => {
            if (up) {
                this.backoff.linkUp(clock())
                this.failures = 0
                this.log.info({ server: `${this.host}:${this.port}`, peer: this.peer, connects: this.connects }, "link up")
            } else this.log.info({ server: `${this.host}:${this.port}`, reason: reason ?? "" }, "link down")
        })
    }

    // Sends a report of this client (report.ts) if its link is up with a
    // devs-iot server; false otherwise (a v1 server never sees one). A bad
    // field is refused (ECONFIG) whether the link is up or not.
    sendReport(r: Report): boolean {
        const p = reportProblem(r)
        if (p !== "") throw new LinkError("ECONFIG", `sendReport(): ${p}`)
        const sent = this.link.sendReport(r)
        if (sent) this.pump()
        return sent
    }

    // Starts connecting; returns at once (await connected() for the link).
    start(): this {
        if (this.started || this.closed) return this
        this.started = true
        this.connect()
        return this
    }

    // Stops reconnecting and closes the link; pending writes and reads reject
    // with ECLOSED.
    // Every call returns the same promise.
    close(): Promise<void> {
        return (this.closing ??= this.shut())
    }

    private async shut(): Promise<void> {
        this.closed = true
        if (this.retry) clearTimeout(this.retry)
        this.connecting?.destroy()
        this.releaseRead()
        // Detach first, so the core's "close" event does not reset the socket:
        // a graceful close sends FIN.
        const s = this.socket
        this.socket = undefined
        this.closeLink()
        if (s && !s.destroyed && this.commitOutput(s)) {
            s.end()
            const t = setTimeout(() => s.destroy(), 500)
            await new Promise<void>((resolve) => s.once("close", () => resolve()))
            clearTimeout(t)
        }
    }

    // Replaces this client's key (a rotation: README, "Security"). A live
    // link is closed so that the next connection authenticates with it.
    setKey(key: Buffer | string): void {
        let k: Buffer
        try {
            k = keyFrom(key, "key")
        } catch (e) {
            throw new LinkError("ECONFIG", (e as Error).message)
        }
        setAuth(this.link, linkAuth(nodeCrypto, k, this.encrypt))
        if (!this.socket) return
        this.dropSocket("key replaced: reconnecting with the new key")
        this.scheduleRetry("key replaced: reconnecting with the new key")
    }

    // The server pushed its id's next key: used from the next connection on
    // (this one keeps its session keys), kept in memory only.
    protected override onRekey(key: Buffer, kcv: string): void {
        setAuth(this.link, linkAuth(nodeCrypto, key, this.encrypt))
        confirmKey(this.link, kcv)
        this.pump()
        this.log.info({ kcv }, "key pushed by the server: using it from the next connection")
        this.emit("rekey", kcv)
    }

    protected override onNotice(code: string, detail: string): void {
        if (code === "refused") {
            this.refusal = detail
            this.refusalCode = code
        }
        // Logged with the retry, as a refusal: a server that keeps failing
        // it shows once per back-off doubling, not on every attempt.
        else if (code === "auth") {
            this.refusal = `authentication failed: ${detail}: connection closed`
            this.refusalCode = code
        }
        else if (code === "too-long" || code === "line-refused") {
            // A server that sends nothing but over-long lines: a few a
            // minute, the rest counted on the next one logged.
            const p = this.lineWarnings.pass(code, clock())
            if (p) this.log.warn({ notice: code, ...p }, detail)
        }
        else super.onNotice(code, detail)
    }

    protected socketGone(): void {
        // No link came up on it (a server that accepts and never answers, or
        // refuses this id): the next address, as for a failed connect.
        const early = this.connects === this.connectsBefore
        if (early) this.nextAddress()
        this.scheduleRetry(early ? "closed before the handshake completed (no devs-iot server there?)" : "link lost")
    }

    // The server flooded or did not read: the socket is cut (dropSocket
    // calls no socketGone). Logged with the retry as a refusal: once per
    // back-off doubling, however often the server does it.
    protected override onBoundCut(code: "slow-reader" | "flood", detail: string): void {
        this.refusal = `server at ${this.host}:${this.port} ${detail}`
        this.refusalCode = code
        queueMicrotask(() => this.socketGone())
    }

    // The next server address (several gateways).
    private nextAddress(): void {
        this.at = nextServer(this.at, this.servers.length)
        this.host = this.servers[this.at]!.host
        this.port = this.servers[this.at]!.port
    }

    private connect(): void {
        if (this.closed) return
        const s = connect({ host: this.host, port: this.port, noDelay: true })
        this.connecting = s
        let error = ""
        // After the I/O poll (see LinkDriver.armTimer): a connect that
        // completed while the process was stalled is taken, not cut.
        const limit = setTimeout(() => setImmediate(() => this.connecting === s && s.destroy(new Error("ETIMEDOUT"))), this.link.cfg.timeout)
        s.on("error", (e: NodeJS.ErrnoException) => (error = e.code ?? e.message))
        s.once("connect", () => {
            clearTimeout(limit)
            this.connecting = undefined
            if (this.closed) return void s.destroy()
            this.connectsBefore = this.connects
            this.attach(s)
        })
        s.once("close", () => {
            clearTimeout(limit)
            if (this.connecting !== s) return // attached: the LinkDriver handles it
            this.connecting = undefined
            const why = `connect to ${this.host}:${this.port} failed: ${error || "closed"}`
            this.nextAddress()
            this.scheduleRetry(why)
        })
    }

    private scheduleRetry(why: string): void {
        if (this.closed || this.retry) return
        this.backoff.linkDown(clock(), this.link.cfg.timeout)
        const delay = this.backoff.next(Math.random())
        this.failures++
        if (this.failures === 1) this.failingSince = clock()
        // A refusal at warn on the 1st, 2nd, 4th, 8th... in a row. Other
        // failures: the first in a row at info, then "still retrying" at info
        // on failures 8, 16, 32, ... and every 300th (about 10 min at the
        // cap): a server down for an hour shows in the log without filling it.
        const f = this.failures
        const still = f >= 8 && ((f & (f - 1)) === 0 || f % 300 === 0)
        const fields = { retryIn: delay, failures: f, failingFor: clock() - this.failingSince }
        const refusal = this.refusal
        this.refusal = ""
        if (refusal !== "") this.log[this.backoff.shouldReport() ? "warn" : "debug"]({ ...fields, code: this.refusalCode }, refusal)
        else if (f === 1) this.log.info(fields, `${why}; retrying in ${delay} ms`)
        else if (still) this.log.info(fields, `still retrying: ${why}; next attempt in ${delay} ms`)
        else this.log.debug(fields, why)
        this.retry = setTimeout(() => {
            this.retry = undefined
            this.connect()
        }, delay)
    }
}
