// The devs-iot server: accepts sockets, reads each one's id line (sending
// nothing before it has), and hands the socket to that id's persistent
// Connection. Sockets are read as events, one per callback, so a silent or
// slow socket never holds up another (fault 8).
import { EventEmitter, once } from "node:events"
import { createServer, type Server as NetServer, type Socket } from "node:net"
import { checkClientId, IdReader, LinkError, MAX_ID_BYTES, nodeDefaults, resolveConfig, ServerAuth, type AuthOutcome, type LinkConfig, type LinkOptions } from "../shared/index.js"
import { intIn } from "../shared/config.js"
import { Connection } from "./connection.js"
import { clock } from "./endpoint.js"
import { keyFrom } from "./keys.js"
import { nodeCrypto } from "./nodecrypto.js"
import { silentLogger, type Logger } from "./log.js"

export interface ServerOptions extends LinkOptions {
    port?: number // default 8123; 0 picks a free port (see server.port)
    host?: string // default "0.0.0.0"
    expected?: string[] // ids the application expects (waitAll's default)
    strictIds?: boolean // refuse ids not in `expected`
    logger?: Logger
    // Issue 9: per-client keys (32 bytes or 64 hex digits). A keyed id must
    // authenticate (README, "Security"), unless it is in allowPlain.
    keys?: Map<string, Buffer | string> | Record<string, Buffer | string>
    allowPlain?: string[] // keyed ids that may still connect without authenticating
    encrypt?: boolean // encrypt the messages sent on authenticated links (AES-256-CCM)
}

export interface Warning {
    code:
        | "unexpected-id"
        | "refused-id"
        | "duplicate-id"
        | "take-over"
        | "bad-id"
        | "id-timeout"
        | "bad-line"
        | "too-long"
        | "no-hello"
        | "auth-failed" // wrong key, bad answer, or a sealed line that did not verify: closed
        | "auth-refused" // a keyed id connected without authenticating and is not allowed plain
    id?: string
    address?: string
    detail: string
}

export declare interface Server {
    on(event: "connect", listener: (conn: Connection) => void): this
    on(event: "disconnect", listener: (conn: Connection, reason: string) => void): this
    on(event: "warning", listener: (w: Warning) => void): this
    on(event: "listening", listener: (port: number) => void): this
}

export class Server extends EventEmitter {
    readonly cfg: LinkConfig
    readonly host: string
    readonly expected: readonly string[]
    readonly strictIds: boolean
    private wantedPort: number
    private boundPort = -1
    private log: Logger
    private net: NetServer
    private conns = new Map<string, Connection>()
    private pending = new Set<Socket>() // sockets whose id line is not read yet
    private arrivals = new Map<string, Array<(c: Connection) => void>>()
    private closing = false
    private keys = new Map<string, Buffer>()
    private allowPlain: Set<string>
    readonly encrypt: boolean

    constructor(opts: ServerOptions = {}) {
        super()
        this.cfg = resolveConfig(opts, nodeDefaults())
        this.wantedPort = intIn("port", opts.port, 8123, 0, 65535)
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
        this.strictIds = opts.strictIds ?? false
        if (this.strictIds && expected.length === 0) throw new LinkError("ECONFIG", "strictIds needs a list of expected ids")
        this.log = opts.logger ?? silentLogger()
        if (opts.keys !== undefined) this.setKeys(opts.keys)
        this.allowPlain = new Set(opts.allowPlain ?? [])
        this.encrypt = opts.encrypt ?? false
        this.net = createServer({ noDelay: true }, (s) => this.accept(s))
    }

    // The bound port (after listen()).
    get port(): number {
        return this.boundPort
    }

    async listen(): Promise<void> {
        this.net.listen(this.wantedPort, this.host)
        await Promise.race([once(this.net, "listening"), once(this.net, "error").then(([e]) => Promise.reject(e))])
        const a = this.net.address()
        this.boundPort = typeof a === "object" && a ? a.port : this.wantedPort
        this.log.info({ host: this.host, port: this.boundPort, timeout: this.cfg.timeout }, "listening")
        this.emit("listening", this.boundPort)
    }

    // The Connection of `id`, once that id has connected (original: client_conn).
    clientConn(id: string): Promise<Connection> {
        const c = this.conns.get(id)
        if (c && c.connects > 0) return Promise.resolve(c)
        return new Promise((resolve) => {
            const list = this.arrivals.get(id) ?? []
            list.push(resolve)
            this.arrivals.set(id, list)
        })
    }

    // Resolves once every listed id (default: the expected ids) has connected.
    async waitAll(ids: readonly string[] = this.expected): Promise<void> {
        await Promise.all(ids.map((id) => this.clientConn(id)))
    }

    connection(id: string): Connection | undefined {
        return this.conns.get(id)
    }

    connections(): Connection[] {
        return [...this.conns.values()]
    }

    // Stops listening and closes every link; pending writes and reads reject
    // with ECLOSED (original: close_all).
    async close(): Promise<void> {
        if (this.closing) return
        this.closing = true
        const closed = new Promise<void>((resolve) => this.net.close(() => resolve()))
        for (const s of this.pending) s.destroy()
        this.pending.clear()
        for (const c of this.conns.values()) c.shutdown()
        await closed
        this.log.info("closed")
    }

    // Replaces the keys (a reload): new connections use them; links already
    // up keep their session until they reconnect. Throws ECONFIG for a bad key.
    setKeys(keys: Map<string, Buffer | string> | Record<string, Buffer | string>): void {
        const next = new Map<string, Buffer>()
        const entries = keys instanceof Map ? [...keys.entries()] : Object.entries(keys)
        for (const [id, k] of entries) {
            try {
                next.set(id, keyFrom(k, `key of ${JSON.stringify(id)}`))
            } catch (e) {
                throw new LinkError("ECONFIG", (e as Error).message)
            }
        }
        this.keys = next
    }

    keyedIds(): string[] {
        return [...this.keys.keys()]
    }

    // ---- inside

    private warn(w: Warning): void {
        this.log.warn({ code: w.code, client: w.id, address: w.address }, w.detail)
        this.emit("warning", w)
    }

    private accept(socket: Socket): void {
        if (this.closing) return void socket.destroy()
        const address = `${socket.remoteAddress}:${socket.remotePort}`
        const reader = new IdReader(MAX_ID_BYTES)
        this.pending.add(socket)
        const deadline = setTimeout(() => {
            this.warn({ code: "id-timeout", address, detail: `no id line within ${2 * this.cfg.timeout} ms` })
            socket.destroy()
        }, 2 * this.cfg.timeout)
        const done = () => {
            clearTimeout(deadline)
            this.pending.delete(socket)
            socket.off("data", onData)
        }
        const onData = (b: Buffer) => {
            reader.push(b)
            const r = reader.next()
            if (r === undefined) return
            done()
            if (r.kind === "bad") {
                this.warn({ code: "bad-id", address, detail: r.reason })
                return void socket.destroy()
            }
            this.route(r.id, socket, r.rest, address)
        }
        socket.on("data", onData)
        socket.on("error", () => {}) // "close" follows; the Connection logs link errors
        socket.once("close", done)
    }

    private route(id: string, socket: Socket, rest: Buffer[], address: string): void {
        if (this.expected.length > 0 && !this.expected.includes(id)) {
            if (this.strictIds) {
                this.warn({ code: "refused-id", id, address, detail: "id not in the expected list: refused" })
                return void socket.destroy()
            }
            this.warn({ code: "unexpected-id", id, address, detail: "id not in the expected list: accepted" })
        }
        const key = this.keys.get(id)
        if (key !== undefined) return this.authenticate(id, key, socket, rest, address)
        let conn = this.conns.get(id)
        if (!conn) {
            conn = this.newConnection(id)
        } else if (conn.hasSocket()) {
            if (!conn.mayTakeOver()) {
                this.warn({ code: "duplicate-id", id, address, detail: `id already connected from ${conn.address}: refused` })
                return void socket.destroy()
            }
            this.warn({ code: "take-over", id, address, detail: `replaces a silent connection from ${conn.address}` })
        }
        conn.adopt(socket, rest)
    }

    // A keyed id: the challenge runs on the new socket before it reaches the
    // id's Connection, so a newcomer takes over a live link only once it has
    // proved the key (fault 9).
    private authenticate(id: string, key: Buffer, socket: Socket, rest: Buffer[], address: string): void {
        const conn = this.conns.get(id) ?? this.newConnection(id)
        const auth = new ServerAuth(nodeCrypto, id, key, conn.epoch, this.cfg.timeout, this.encrypt, clock())
        this.pending.add(socket)
        let timer: NodeJS.Timeout | undefined
        let finished = false
        const finish = (o: AuthOutcome) => {
            finished = true
            if (timer) clearTimeout(timer)
            this.pending.delete(socket)
            socket.off("data", onData)
            this.authDone(id, conn, socket, o, address)
        }
        const drive = () => {
            if (finished) return
            const now = clock()
            const o = auth.step(now) ?? auth.handleTimeout(now)
            for (let b = auth.pollTransmit(); b !== undefined; b = auth.pollTransmit()) socket.write(b)
            if (o !== undefined) return finish(o)
            if (timer) clearTimeout(timer)
            const due = auth.pollTimeout()
            if (due >= 0) timer = setTimeout(drive, Math.max(0, due - clock()))
        }
        const onData = (b: Buffer) => {
            auth.push(b)
            drive()
        }
        socket.on("data", onData)
        socket.once("close", () => {
            if (finished) return
            finished = true
            if (timer) clearTimeout(timer)
            this.pending.delete(socket)
        })
        for (const b of rest) auth.push(b)
        drive()
    }

    private authDone(id: string, conn: Connection, socket: Socket, o: AuthOutcome, address: string): void {
        if (socket.destroyed || this.closing) return void socket.destroy()
        if (o.kind === "fail") {
            this.warn({ code: "auth-failed", id, address, detail: `authentication failed: ${o.reason}: connection closed` })
            // end, not destroy: a refusal line may still be on its way.
            socket.end()
            setTimeout(() => socket.destroy(), 500).unref()
            return
        }
        if (o.kind === "auth") {
            if (conn.hasSocket()) this.warn({ code: "take-over", id, address, detail: `an authenticated connection replaces the one from ${conn.address}` })
            this.log.info({ client: id, address }, "client authenticated")
            return conn.adoptAuthenticated(socket, o.session, o.peerEpoch, o.rest)
        }
        const what = o.kind === "hello" ? "a devs-iot client without a key" : "a v1 client (no authentication)"
        if (!this.allowPlain.has(id)) {
            this.warn({ code: "auth-refused", id, address, detail: `keyed id connected as ${what}: refused (not in the allowed-plain list)` })
            return void socket.destroy()
        }
        if (conn.hasSocket()) {
            if (!conn.mayTakeOver()) {
                this.warn({ code: "duplicate-id", id, address, detail: `id already connected from ${conn.address}: refused` })
                return void socket.destroy()
            }
            this.warn({ code: "take-over", id, address, detail: `replaces a silent connection from ${conn.address}` })
        }
        if (o.kind === "hello") conn.adoptHelloed(socket, o.peerEpoch, o.rest)
        else conn.adopt(socket, o.rest)
    }

    private newConnection(id: string): Connection {
        const conn = new Connection(id, this.cfg, this.log)
        this.conns.set(id, conn)
        conn.on("status", (up: boolean, reason?: string) => {
            if (up) {
                this.log.info({ client: id, address: conn.address, peer: conn.peer, connects: conn.connects }, "client connected")
                for (const resolve of this.arrivals.get(id)?.splice(0) ?? []) resolve(conn)
                this.emit("connect", conn)
            } else {
                this.log.info({ client: id, reason }, "client disconnected")
                this.emit("disconnect", conn, reason ?? "")
            }
        })
        conn.on("warning", (w: Warning) => this.warn(w))
        return conn
    }
}
