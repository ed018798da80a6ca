// The server's HTTP side (node:http, no framework): Prometheus metrics, the
// status API, a live dashboard (a static page fed by server-sent events),
// and, with a token, two actions. Off unless a port is given; bound to
// loopback unless a host is given.
//
// Security: responses hold no secret (neither the token nor any key);
// actions need `Authorization: Bearer <token>`, compared in constant time;
// board-supplied strings go out only as JSON and the page shows them as text;
// every response and request body is bounded; it answers only loopback
// host names, IP addresses (when not bound to loopback) and the names it is
// given, so another site cannot read it through DNS rebinding; a browser's
// request from another site's page is refused.
import { createHash, timingSafeEqual } from "node:crypto"
import { readFileSync } from "node:fs"
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http"
import { isIP } from "node:net"
import { LinkError } from "../shared/index.js"
import { checkOptionKeys, type OptionKeys } from "./options.js"
import { intIn, show } from "../shared/config.js"
import { Fleet, type BoardStatus } from "./fleet.js"
import { Metrics } from "./metrics.js"
import type { Server } from "./server.js"
import { isLoopbackHost, listenOn } from "./listen.js"
import { LogBudget } from "./admission.js"
import { clock } from "./clock.js"
import { silentLogger, type Logger } from "./log.js"

export interface HttpOptions {
    port: number // 0 picks a free port (see .port)
    host?: string // default 127.0.0.1
    token?: string // enables the actions; 16 to 1024 characters
    // Host names answered besides loopback names and (bound elsewhere than
    // loopback) IP addresses: any other name may be a DNS rebinding.
    allowedHosts?: string[]
    logger?: Logger
}

const HTTP_KEYS: OptionKeys<HttpOptions> = { port: true, host: true, token: true, allowedHosts: true, logger: true }

const MAX_RESPONSE_BYTES = 1048576 // a board list is cut here (the answer says where to go on)
const MAX_PAGE_BOARDS = 1000
export const MAX_EVENT_CLIENTS = 32
export const MAX_HTTP_CONNECTIONS = 256 // past it, new HTTP connections are closed at once: the boards' links keep their file descriptors
const MAX_EVENT_BUFFER = 262144 // an event-stream reader this far behind is cut
const MAX_CHANGES_PER_FLUSH = 500 // board events per flush; past it the page reloads the list
const MAX_REQUEST_BYTES = 16 + 2 * 65536 // a line to send, as UTF-8
const TICK_MS = 1000

const STATIC: Record<string, { file: string; type: string }> = {
    "/": { file: "index.html", type: "text/html; charset=utf-8" },
    "/dashboard.js": { file: "dashboard.js", type: "text/javascript; charset=utf-8" },
    "/dashboard.css": { file: "dashboard.css", type: "text/css; charset=utf-8" },
}
// Next to the compiled module is dist/src/server; the files stay in src.
const STATIC_DIR = new URL("../../../src/server/dashboard/", import.meta.url)

const HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}

export function checkToken(token: unknown): string {
    if (typeof token !== "string" || token.length < 16 || token.length > 1024 || /[\s\x00-\x1f]/.test(token))
        throw new LinkError("ECONFIG", "the HTTP token must be 16 to 1024 characters without spaces or control characters")
    return token
}

// The names, lowercased, or an error naming the first that is not a host name.
export function checkHostNames(names: unknown): string[] {
    if (!Array.isArray(names)) throw new LinkError("ECONFIG", `allowedHosts must be a list of host names, got ${show(names)}`)
    return names.map((h: unknown) => {
        if (typeof h !== "string" || !/^[A-Za-z0-9._-]{1,253}$/.test(h)) throw new LinkError("ECONFIG", `${JSON.stringify(h)} is not a host name`)
        return h.toLowerCase()
    })
}

// An IP address as a Host header gives it (IPv6 in brackets): no DNS name,
// so no rebinding.
function isIpHost(h: string): boolean {
    return isIP(h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h) !== 0
}

export class HttpStatus {
    readonly fleet: Fleet
    /** @internal */
    readonly metrics: Metrics
    readonly host: string
    private wantedPort: number
    private boundPort = -1
    private tokenHash: Buffer | undefined
    private http: HttpServer
    private log: Logger
    private files = new Map<string, Buffer>()
    private streams = new Set<ServerResponse>()
    private changed = new Set<string>()
    private overflow = false
    private ticker: NodeJS.Timeout | undefined
    private closed: Promise<void> | undefined
    private opening: Promise<void> = Promise.resolve()
    private flushTimer: NodeJS.Timeout | undefined
    private onChange = (id: string) => this.noteChange(id)
    private warnings = new Map<string, LogBudget>() // the log gets at most one line of each kind a second
    private allowedHosts: Set<string>

    constructor(server: Server, opts: HttpOptions) {
        checkOptionKeys(opts, HTTP_KEYS, "new HttpStatus()")
        if (opts === undefined) throw new LinkError("ECONFIG", "new HttpStatus() needs its options: { port } at least")
        this.wantedPort = intIn("port", opts.port, 0, 0, 65535)
        if (opts.host !== undefined && (typeof opts.host !== "string" || opts.host === ""))
            throw new LinkError("ECONFIG", "host must be a non-empty string")
        this.host = opts.host ?? "127.0.0.1"
        this.allowedHosts = new Set(checkHostNames(opts.allowedHosts ?? []))
        // Only the hash is kept; comparing hashes of equal length in constant
        // time tells an attacker nothing of the token, not even its length.
        if (opts.token !== undefined) this.tokenHash = sha256(checkToken(opts.token))
        this.log = opts.logger ?? silentLogger()
        for (const [path, s] of Object.entries(STATIC)) this.files.set(path, readFileSync(new URL(s.file, STATIC_DIR)))
        this.fleet = new Fleet(server)
        this.metrics = new Metrics(this.fleet)
        this.fleet.on("change", this.onChange)
        this.http = createServer((req, res) => this.handle(req, res))
        this.http.headersTimeout = 10000
        this.http.requestTimeout = 30000
        this.http.maxHeadersCount = 64
        this.http.maxConnections = MAX_HTTP_CONNECTIONS
    }

    get port(): number {
        return this.boundPort
    }

    // As the Server's: rejects with ECLOSED once close() was called, and
    // close() waits for a listen() under way.
    listen(): Promise<void> {
        if (this.closed) return Promise.reject(new LinkError("ECLOSED", "HTTP side closed"))
        const p = this.bind()
        this.opening = Promise.all([this.opening, p.catch(() => {})]).then(() => {})
        return p
    }

    private async bind(): Promise<void> {
        await listenOn(this.http, this.wantedPort, this.host, this.log, "HTTP: accepting a connection failed")
        const a = this.http.address()
        this.boundPort = typeof a === "object" && a ? a.port : this.wantedPort
        this.ticker = setInterval(() => this.tick(), TICK_MS)
        this.ticker.unref()
        this.log.info({ host: this.host, port: this.boundPort, actions: this.tokenHash !== undefined }, "HTTP status listening")
    }

    // Every call returns the same promise.
    close(): Promise<void> {
        return (this.closed ??= this.shut())
    }

    private async shut(): Promise<void> {
        await this.opening
        if (this.ticker) clearInterval(this.ticker)
        if (this.flushTimer) clearTimeout(this.flushTimer)
        for (const s of this.streams) s.end()
        this.streams.clear()
        this.fleet.off("change", this.onChange)
        this.fleet.detach()
        this.metrics.close()
        const closed = new Promise<void>((resolve) => this.http.close(() => resolve()))
        this.http.closeAllConnections()
        await closed
    }

    // ---- requests

    private handle(req: IncomingMessage, res: ServerResponse): void {
        this.route(req, res).catch((e: Error) => {
            this.log.error({ err: e.message, url: req.url }, "HTTP request failed")
            if (!res.headersSent) this.json(res, 500, { error: "internal error" })
            else res.destroy()
        })
    }

    private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
        let url: URL
        try {
            url = new URL(req.url ?? "/", "http://localhost")
        } catch {
            return this.json(res, 400, { error: "bad URL" })
        }
        const path = url.pathname
        // The metrics hold no board id or address: they answer any host
        // name (Prometheus scrapes by service name); the rest only names
        // no DNS rebinding can bring here.
        const hostName = (req.headers.host ?? "").replace(/:\d+$/, "").toLowerCase()
        const loopback = isLoopbackHost(this.host)
        if (path !== "/metrics" && !isLoopbackHost(hostName) && !(!loopback && isIpHost(hostName)) && !this.allowedHosts.has(hostName)) {
            this.warn("host", { host: hostName.slice(0, 100), address: req.socket.remoteAddress }, "HTTP request for a host name not allowed: refused (421); allow it with --http-allowed-hosts if it is yours")
            const names = loopback ? "a loopback host name (localhost, 127.0.0.1)" : "a loopback host name or an IP address"
            return this.json(res, 421, { error: `this server answers only to ${names}${this.allowedHosts.size > 0 ? ` or ${[...this.allowedHosts].join(", ")}` : ""}: another name may be a DNS rebinding (allow a name with --http-allowed-hosts)` })
        }
        // A browser says where a request comes from: the page itself, or
        // the address bar (none). Another site's page (an <img>, a frame or a
        // form pointed here) is refused, so it can neither hold the event
        // streams nor make the server work; a link followed from it is not
        // (a top-level GET, shown only to the user). Non-browser clients
        // send nothing.
        const site = req.headers["sec-fetch-site"]
        const followed = req.headers["sec-fetch-mode"] === "navigate" && req.headers["sec-fetch-dest"] === "document" && req.method === "GET"
        if (site !== undefined && site !== "same-origin" && site !== "none" && !followed)
            return this.json(res, 403, { error: `requests from another site's page are refused (Sec-Fetch-Site: ${site})` })
        const method = req.method ?? "GET"
        const file = STATIC[path]
        if (path === "/favicon.ico") {
            res.writeHead(204, HEADERS)
            return void res.end()
        }
        if (file || path === "/metrics" || path === "/api/events" || path === "/api/boards") {
            if (method !== "GET" && method !== "HEAD") return this.json(res, 405, { error: "use GET" }, { Allow: "GET, HEAD" })
            if (file) return this.send(res, 200, file.type, this.files.get(path)!)
            if (path === "/api/events") return this.openStream(req, res)
            if (path === "/api/boards") return this.list(url, res)
            const m = await this.metrics.text()
            return this.send(res, 200, m.type, Buffer.from(m.body))
        }
        const m = /^\/api\/boards\/([^/]+)(?:\/(disconnect|send))?$/.exec(path)
        if (m) {
            let id: string
            try {
                id = decodeURIComponent(m[1]!)
            } catch {
                return this.json(res, 400, { error: "bad board id in the URL (percent-encoding)" })
            }
            const action = m[2]
            if (action === undefined) {
                if (method !== "GET" && method !== "HEAD") return this.json(res, 405, { error: "use GET" }, { Allow: "GET, HEAD" })
                const b = this.fleet.board(id)
                return b ? this.json(res, 200, b) : this.json(res, 404, { error: "no such board" })
            }
            if (method !== "POST") return this.json(res, 405, { error: "use POST" }, { Allow: "POST" })
            return this.act(req, res, id, action)
        }
        return this.json(res, 404, { error: "not found" })
    }

    // A page of boards, cut at MAX_PAGE_BOARDS or MAX_RESPONSE_BYTES, whichever
    // comes first; `next` is the offset of the next page, or null.
    private list(url: URL, res: ServerResponse): void {
        const q = (name: string, dflt: number, max: number): number | undefined => {
            const v = url.searchParams.get(name)
            if (v === null) return dflt
            return /^\d{1,9}$/.test(v) && Number(v) <= max ? Number(v) : undefined
        }
        const offset = q("offset", 0, 1e9)
        const limit = q("limit", MAX_PAGE_BOARDS, MAX_PAGE_BOARDS)
        if (offset === undefined || limit === undefined)
            return this.json(res, 400, { error: `offset must be a whole number; limit a whole number up to ${MAX_PAGE_BOARDS}` })
        const parts: string[] = []
        let bytes = 100
        let i = 0
        let next: number | null = null
        for (const b of this.fleet.boards()) {
            if (i++ < offset) continue
            if (parts.length >= limit) {
                next = i - 1
                break
            }
            const s = JSON.stringify(b)
            const n = Buffer.byteLength(s) + 1
            if (bytes + n > MAX_RESPONSE_BYTES && parts.length > 0) {
                next = i - 1
                break
            }
            bytes += n
            parts.push(s)
        }
        const total = this.fleet.totals()
        const head = JSON.stringify({ total: total.boards, up: total.up, offset, next })
        this.send(res, 200, "application/json; charset=utf-8", Buffer.from(`${head.slice(0, -1)},"boards":[${parts.join(",")}]}`))
    }

    private async act(req: IncomingMessage, res: ServerResponse, id: string, action: string): Promise<void> {
        if (this.tokenHash === undefined) return this.json(res, 403, { error: "actions are off: the server has no HTTP token (--http-token)" })
        if (!this.authorized(req)) {
            this.fleet.countAuthFailure("http-token")
            this.warn("token", { address: req.socket.remoteAddress }, "HTTP action with a missing or wrong token: refused")
            return this.json(res, 401, { error: "missing or wrong token (Authorization: Bearer <token>)" }, { "WWW-Authenticate": "Bearer" })
        }
        const conn = this.fleet.server.connection(id)
        if (!conn || conn.connects === 0) return this.json(res, 404, { error: "no such board" })
        if (action === "disconnect") {
            req.resume()
            const was = conn.disconnect()
            return this.json(res, 200, { disconnected: was })
        }
        const body = await readBody(req, MAX_REQUEST_BYTES)
        if (body === undefined) return this.json(res, 413, { error: `request body over ${MAX_REQUEST_BYTES} bytes` })
        const line = body.toString("utf-8").replace(/\r?\n$/, "")
        // Queued, not awaited: the board may be down for a long time. A line
        // the link refuses (empty, too long, a newline inside, queue full)
        // fails before the next turn of the event loop.
        const p = conn.write(line, { qos: true, wait: false })
        const early = await Promise.race([p.then(() => undefined, (e: LinkError) => e), new Promise<"queued">((r) => setImmediate(() => r("queued")))])
        if (early instanceof Error) return this.json(res, early.code === "EQUEUEFULL" ? 503 : 400, { error: early.message, code: early.code })
        p.catch(() => {}) // a later failure (link closed) is the link's business
        return this.json(res, 202, { queued: true })
    }

    private warn(kind: "host" | "token", o: object, msg: string): void {
        let budget = this.warnings.get(kind)
        if (!budget) this.warnings.set(kind, (budget = new LogBudget(1)))
        const pass = budget.pass(kind, clock())
        if (pass) this.log.warn({ ...o, ...pass }, msg)
    }

    private authorized(req: IncomingMessage): boolean {
        const h = req.headers.authorization
        const m = typeof h === "string" ? /^Bearer (\S+)$/.exec(h) : null
        return m !== null && timingSafeEqual(sha256(m[1]!), this.tokenHash!)
    }

    // ---- the event stream

    private openStream(req: IncomingMessage, res: ServerResponse): void {
        if (this.streams.size >= MAX_EVENT_CLIENTS) return this.json(res, 503, { error: `too many event streams (${MAX_EVENT_CLIENTS})` })
        res.writeHead(200, { ...HEADERS, "Content-Type": "text/event-stream; charset=utf-8", Connection: "keep-alive" })
        this.streams.add(res)
        const drop = () => this.streams.delete(res)
        req.on("close", drop)
        res.on("error", drop)
        res.write(`retry: 2000\n\n`)
        this.event(res, "tick", this.tickData())
    }

    private event(res: ServerResponse, name: string, data: unknown): void {
        // A reader that does not keep up is cut, not buffered without bound.
        if (res.writableLength > MAX_EVENT_BUFFER) {
            this.streams.delete(res)
            res.destroy()
            return
        }
        res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`)
    }

    private broadcast(name: string, data: unknown): void {
        for (const s of this.streams) this.event(s, name, data)
    }

    private tickData() {
        const t = this.fleet.totals()
        return { at: Date.now(), ...t }
    }

    private tick(): void {
        if (this.streams.size > 0) this.broadcast("tick", this.tickData())
    }

    // Changes are gathered for a moment, so a reconnect storm is a few
    // events, each bounded; past the bound the page reloads the list.
    private noteChange(id: string): void {
        if (this.streams.size === 0) return
        if (this.changed.size < MAX_CHANGES_PER_FLUSH) this.changed.add(id)
        else this.overflow = true
        if (this.flushTimer) return
        this.flushTimer = setTimeout(() => this.flush(), 100)
        this.flushTimer.unref()
    }

    private flush(): void {
        this.flushTimer = undefined
        const ids = [...this.changed]
        this.changed.clear()
        if (this.overflow) {
            this.overflow = false
            return this.broadcast("reload", {})
        }
        const boards: BoardStatus[] = []
        let bytes = 0
        for (const id of ids) {
            const b = this.fleet.board(id)
            if (!b) continue
            bytes += JSON.stringify(b).length
            if (bytes > MAX_RESPONSE_BYTES / 4) return this.broadcast("reload", {})
            boards.push(b)
        }
        if (boards.length > 0) this.broadcast("boards", boards)
    }

    // ---- responses

    private json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
        this.send(res, status, "application/json; charset=utf-8", Buffer.from(JSON.stringify(body)), extra)
    }

    private send(res: ServerResponse, status: number, type: string, body: Buffer, extra: Record<string, string> = {}): void {
        res.writeHead(status, { ...HEADERS, ...extra, "Content-Type": type, "Content-Length": body.length })
        res.end(res.req.method === "HEAD" ? undefined : body)
    }
}

function sha256(s: string): Buffer {
    return createHash("sha256").update(s, "utf-8").digest()
}

// The whole body, or undefined when it is longer than `max` (reading stops).
async function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
    const declared = Number(req.headers["content-length"] ?? 0)
    if (declared > max) return undefined
    const parts: Buffer[] = []
    let n = 0
    for await (const b of req as AsyncIterable<Buffer>) {
        n += b.length
        if (n > max) return undefined
        parts.push(b)
    }
    return Buffer.concat(parts)
}
