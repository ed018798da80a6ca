// The LAN gateway that DeviceScript boards reach with their wssk client
// (connection string ws://<key>@<host>:<port>/wssk/<board id>). It accepts a
// board only while the server wants a session with it (a deploy or rollback
// is pending): the board's runtime has one TCP socket, shared with the
// devs-iot link, and a wssk session left up would make the runtime cut the
// link later (docs/operations.md, "The one-socket limitation"). Any other attempt gets HTTP 403, which puts
// the board's wssk back to "disconnected".
import { EventEmitter } from "node:events"
import { createServer, type Server as NetServer, type Socket } from "node:net"
import { silentLogger, type Logger } from "../log.js"
import { classify, LineSplitter, MAX_EXCEPTION_REPORT_BYTES, parseException, type ExceptionReport } from "./boardlog.js"
import type { DeployRun, RunResult } from "./deployrun.js"
import { acceptResponse, closeFrame, encodeFrame, OP_BINARY, OP_PONG, refusalResponse, WebSocketError, WsDecoder } from "./websocket.js"
import { listenOn } from "../listen.js"
import { LogBudget } from "../admission.js"
import { intIn } from "../../shared/config.js"
import { clientRandom, Cmd, GatewaySession, KEY_BYTES, MAX_TO_BOARD, Streaming, WsskError } from "./wssk.js"

interface OtaGatewayOptions {
    port?: number // 0: a free port (see gateway.port)
    host?: string // default "0.0.0.0"
    keys: Map<string, Buffer> // board id -> its 32-byte wssk key
    logger?: Logger
    handshakeTimeout?: number // ms from accept to the board's proof; default 10000
    idleTimeout?: number // ms without a message from the board; default 40000 (it pings after 16 s)
    maxSockets?: number // sockets at once; default 64
}

export const BOARD_PATH = /^\/wssk\/([A-Za-z0-9._:-]{1,64})$/
const STREAM_MASK = Streaming.Dmesg | Streaming.Exceptions
const STREAM_REFRESH_MS = 10000 // the board drops temporary streaming after ~16 s
const MAX_PER_ADDRESS = 4 // sockets from one address (a board needs one; a rollback must find room)
const REQUEST_WITHIN = 3000 // ms from accept to the HTTP upgrade request (a board sends it at once)
// The longest of the waits given in options (ms): an hour, as the link's timeout.
export const MAX_WAIT_MS = 3600000
const WARNINGS_PER_SECOND = 10 // logged; the rest counted and told in the next logged line
// A session's program lines logged (at info): a burst of this many, then this
// many per CONSOLE_LOG_PERIOD_MS; the rest counted in the next logged line
// and at the session's end. The "log" event still has every line.
export const CONSOLE_LINES_LOGGED = 100
export const CONSOLE_LOG_PERIOD_MS = 10000
// Bytes written and not yet taken by the peer. A board reads at once (it
// gets one deploy chunk per reply); past this, the peer sends (pings, say)
// and does not read what comes back: it is cut, not buffered for.
export const MAX_UNSENT_BYTES = 64 * 1024

export declare interface OtaGateway {
    on(event: "log", listener: (id: string, kind: "console" | "runtime", text: string) => void): this
    on(event: "exception", listener: (id: string, e: ExceptionReport) => void): this
    on(event: "warning", listener: (w: { code: string; id?: string; address: string; detail: string }) => void): this
}

export class OtaGateway extends EventEmitter {
    private net: NetServer
    private log: Logger
    private keys: Map<string, Buffer>
    private waiters = new Map<string, { resolve: (s: BoardSession) => void; reject: (e: Error) => void }>()
    private sessions = new Map<string, BoardSession>()
    private sockets = new Set<Socket>()
    private readonly handshakeTimeout: number
    private readonly idleTimeout: number
    private readonly maxSockets: number
    private boundPort = 0

    constructor(private opts: OtaGatewayOptions) {
        super()
        for (const [id, k] of opts.keys) if (k.length !== KEY_BYTES) throw new WsskError(`OTA key for ${JSON.stringify(id)} must be ${KEY_BYTES} bytes`)
        this.keys = opts.keys
        this.log = (opts.logger ?? silentLogger()).child({ ota: "gateway" })
        // Checked: Node runs a timer over 2^31 - 1 ms after 1 ms, which would cut every board at once.
        this.handshakeTimeout = intIn("handshakeTimeout", opts.handshakeTimeout, 10000, 100, MAX_WAIT_MS)
        this.idleTimeout = intIn("idleTimeout", opts.idleTimeout, 40000, 1000, MAX_WAIT_MS)
        this.maxSockets = intIn("maxSockets", opts.maxSockets, 64, 1, 65536)
        this.net = createServer((s) => this.accept(s))
    }

    get port(): number {
        return this.boundPort
    }

    async listen(): Promise<void> {
        await listenOn(this.net, this.opts.port ?? 0, this.opts.host ?? "0.0.0.0", this.log, "OTA gateway: accepting a connection failed")
        this.boundPort = (this.net.address() as { port: number }).port
        this.log.info({ port: this.boundPort }, "OTA gateway listening")
    }

    async close(): Promise<void> {
        for (const [id, w] of this.waiters) w.reject(new Error(`gateway closed while waiting for ${id}`))
        this.waiters.clear()
        for (const s of this.sockets) s.destroy()
        await new Promise<void>((r) => this.net.close(() => r()))
    }

    hasKey(id: string): boolean {
        return this.keys.has(id)
    }

    // Accepts the board's next session; resolves once it has proven its key.
    want(id: string): Promise<BoardSession> {
        if (!this.keys.has(id)) return Promise.reject(new Error(`no OTA key for board ${JSON.stringify(id)}`))
        this.waiters.get(id)?.reject(new Error(`superseded wait for ${id}`))
        return new Promise((resolve, reject) => this.waiters.set(id, { resolve, reject }))
    }

    // Stops accepting the board; a pending want() rejects with `reason`.
    unwant(id: string, reason: string): void {
        const w = this.waiters.get(id)
        this.waiters.delete(id)
        w?.reject(new Error(reason))
    }

    private logBudget = new LogBudget(WARNINGS_PER_SECOND)

    // Emitted each time; logged at most WARNINGS_PER_SECOND a second, the
    // next logged line counting those that were not.
    private warn(code: string, address: string, detail: string, id?: string): void {
        this.emit("warning", { code, id, address, detail })
        const extra = this.logBudget.pass(code, performance.now())
        if (extra) this.log.warn({ code, board: id, address, detail, ...extra }, "OTA gateway")
    }

    private perAddress = new Map<string, number>()

    private accept(socket: Socket): void {
        const address = `${socket.remoteAddress}:${socket.remotePort}`
        const from = socket.remoteAddress ?? ""
        if (this.sockets.size >= this.maxSockets || (this.perAddress.get(from) ?? 0) >= MAX_PER_ADDRESS) {
            this.warn("too-many", address, this.sockets.size >= this.maxSockets ? `over ${this.maxSockets} sockets: refused` : `over ${MAX_PER_ADDRESS} sockets from ${from}: refused`)
            socket.destroy()
            return
        }
        this.sockets.add(socket)
        this.perAddress.set(from, (this.perAddress.get(from) ?? 0) + 1)
        socket.setNoDelay(true)
        const decoder = new WsDecoder()
        let session: GatewaySession | undefined = undefined
        let board: BoardSession | undefined = undefined
        let id: string | undefined = undefined
        let idle: NodeJS.Timeout | undefined = undefined
        const handshake = setTimeout(() => cut("handshake-timeout", `no proof within ${this.handshakeTimeout} ms`), this.handshakeTimeout)
        let requested = false
        const request = setTimeout(() => requested || cut("handshake-timeout", `no request within ${REQUEST_WITHIN} ms`), Math.min(REQUEST_WITHIN, this.handshakeTimeout))
        // Refused: nothing more is read from this socket.
        let refused = false
        const refuse = (response: Buffer) => {
            refused = true
            socket.end(response)
            setTimeout(() => socket.destroy(), 1000).unref()
        }
        const feedIdle = () => {
            if (idle) clearTimeout(idle)
            idle = setTimeout(() => cut("idle", `silent for ${this.idleTimeout} ms`), this.idleTimeout)
        }
        const cut = (code: string, detail: string) => {
            this.warn(code, address, `${detail}: connection closed`, id)
            socket.destroy()
        }
        socket.on("error", () => {})
        socket.on("close", () => {
            clearTimeout(handshake)
            clearTimeout(request)
            if (idle) clearTimeout(idle)
            this.sockets.delete(socket)
            const n = (this.perAddress.get(from) ?? 1) - 1
            if (n > 0) this.perAddress.set(from, n)
            else this.perAddress.delete(from)
            board?.gone("connection closed")
        })
        socket.on("data", (chunk: Buffer) => {
            if (refused || socket.destroyed) return
            // Whatever a peer sends, an exception ends its socket, never the process.
            try {
                onData(chunk)
            } catch (e) {
                this.log.error({ board: id, address, stack: (e as Error)?.stack }, `OTA gateway: error while handling a connection, closed: ${(e as Error)?.message}`)
                socket.destroy()
            }
            if (!socket.destroyed && socket.writableLength > MAX_UNSENT_BYTES) cut("slow-reader", `over ${MAX_UNSENT_BYTES} bytes unsent: the peer does not read what it asks for`)
        })
        const onData = (chunk: Buffer) => {
            let events
            try {
                events = decoder.push(chunk)
            } catch (e) {
                const msg = (e as Error).message
                if (!session) {
                    this.warn("bad-request", address, msg, id)
                    refuse(refusalResponse((e as WebSocketError).status ?? 400, msg))
                } else cut("bad-frame", msg)
                return
            }
            for (const ev of events) {
                if (socket.destroyed) return
                if (ev.kind === "request") {
                    requested = true
                    clearTimeout(request)
                    const m = BOARD_PATH.exec(ev.request.path)
                    const key = m ? this.keys.get(m[1]!) : undefined
                    id = m?.[1]
                    if (!m || !key) {
                        this.warn("unknown-board", address, `no OTA key for path ${JSON.stringify(ev.request.path.slice(0, 80))}: refused`)
                        refuse(refusalResponse(404, "unknown board"))
                        return
                    }
                    if (!this.waiters.has(m[1]!)) {
                        // The usual case: the board tries whenever its link is down.
                        this.log.debug({ board: id, address }, "OTA session refused: nothing pending")
                        refuse(refusalResponse(403, "nothing pending"))
                        return
                    }
                    let client: Buffer
                    try {
                        client = clientRandom(ev.request.headers["sec-websocket-protocol"])
                    } catch (e) {
                        this.warn("bad-request", address, (e as Error).message, id)
                        refuse(refusalResponse(400, (e as Error).message))
                        return
                    }
                    session = new GatewaySession(key, client)
                    const out = [acceptResponse(ev.request.headers["sec-websocket-key"]!, ev.request.headers["sec-websocket-protocol"]!)]
                    for (const msg of session.opening()) out.push(encodeFrame(OP_BINARY, msg))
                    socket.write(Buffer.concat(out))
                    feedIdle()
                } else if (ev.kind === "ping") {
                    socket.write(encodeFrame(OP_PONG, ev.data))
                } else if (ev.kind === "close") {
                    socket.end(closeFrame(1000))
                    return
                } else {
                    if (!session) return cut("bad-frame", "a message before the upgrade")
                    feedIdle()
                    let r
                    try {
                        r = session.receive(ev.data)
                    } catch (e) {
                        cut(session.isAuthenticated ? "bad-message" : "auth-failed", (e as Error).message)
                        return
                    }
                    if (r.kind === "authenticated") {
                        clearTimeout(handshake)
                        board = new BoardSession(id!, socket, session!, this, this.log.child({ board: id }))
                        const old = this.sessions.get(id!)
                        if (old) old.close("replaced by a new session")
                        this.sessions.set(id!, board)
                        this.log.info({ board: id, address }, "OTA session authenticated")
                        const w = this.waiters.get(id!)
                        this.waiters.delete(id!)
                        if (w) w.resolve(board)
                        else board.close("nothing pending")
                    } else board!.command(r.cmd, r.payload)
                }
            }
        }
    }

    /** @internal */
    sessionGone(s: BoardSession): void {
        if (this.sessions.get(s.id) === s) this.sessions.delete(s.id)
    }
}

// An authenticated session with one board.
class BoardSession {
    private run: DeployRun | undefined = undefined
    private runDone: ((r: RunResult) => void) | undefined = undefined
    private splitter = new LineSplitter()
    private consoleBudget = new LogBudget(CONSOLE_LINES_LOGGED, CONSOLE_LOG_PERIOD_MS)
    private report: Buffer[] = []
    private reportBytes = 0
    private reportTimer: NodeJS.Timeout | undefined = undefined
    private streamTimer: NodeJS.Timeout
    private ended = false
    private ending = false // the WebSocket close is sent; reading the last replies
    private endWaiters: Array<(reason: string) => void> = []

    /** @internal */
    constructor(
        readonly id: string,
        private socket: Socket,
        private session: GatewaySession,
        private gateway: OtaGateway,
        private log: Logger
    ) {
        this.send([[Cmd.SetStreaming, streamMask()]])
        this.streamTimer = setInterval(() => this.send([[Cmd.SetStreaming, streamMask()]]), STREAM_REFRESH_MS)
    }

    get isOpen(): boolean {
        return !this.ended
    }

    // Runs a deploy; resolves with its result (also when the session ends or
    // `ms` passes first).
    execute(run: DeployRun, ms: number): Promise<RunResult> {
        if (this.run) return Promise.reject(new Error(`a deploy is already running on ${this.id}`))
        if (this.ended) return Promise.resolve(run.ended("session already closed"))
        this.run = run
        return new Promise((resolve) => {
            const t = setTimeout(() => {
                this.finishRun(run.ended(`deploy not finished within ${ms} ms`))
                this.close("deploy timed out")
            }, ms)
            this.runDone = (r) => {
                clearTimeout(t)
                resolve(r)
            }
            this.apply(run.begin())
        })
    }

    // Resolves when the session is over (with the reason).
    whenClosed(): Promise<string> {
        if (this.ended) return Promise.resolve("closed")
        return new Promise((r) => this.endWaiters.push(r))
    }

    close(reason: string): void {
        if (this.ended) return
        this.log.debug({ reason }, "OTA session closing")
        if (this.ending) this.socket.end()
        else this.socket.end(closeFrame(1000))
        setTimeout(() => this.socket.destroy(), 1000).unref()
        this.gone(reason)
    }

    /** @internal */
    gone(reason: string): void {
        if (this.ended) return
        this.ended = true
        clearInterval(this.streamTimer)
        this.flushLog()
        const unlogged = this.consoleBudget.takeSkipped()
        if (unlogged) this.log.info({ unlogged }, "board console: lines over the budget not logged")
        this.flushReport()
        if (this.run && !this.run.done) this.finishRun(this.run.ended(reason))
        this.gateway.sessionGone(this)
        for (const w of this.endWaiters.splice(0)) w(reason)
    }

    /** @internal A decrypted command from the board. */
    command(cmd: number, payload: Buffer): void {
        if (cmd !== Cmd.ExceptionReport) this.flushReport()
        const out = this.run?.reply(cmd, payload)
        if (out) {
            this.apply(out)
            return
        }
        switch (cmd) {
            case Cmd.PingCloud:
                // The board's own pings fit; a longer one could not go back (MAX_TO_BOARD).
                if (payload.length <= MAX_TO_BOARD - 1) this.send([[Cmd.PingCloud, payload]])
                return
            case Cmd.Dmesg:
                for (const line of this.splitter.push(payload)) if (line !== "") this.logLine(line)
                return
            case Cmd.ExceptionReport:
                if (this.reportBytes + payload.length <= MAX_EXCEPTION_REPORT_BYTES) {
                    this.report.push(Buffer.from(payload))
                    this.reportBytes += payload.length
                }
                // The report ends when its messages stop (no end marker).
                if (this.reportTimer) clearTimeout(this.reportTimer)
                this.reportTimer = setTimeout(() => this.flushReport(), 300)
                return
            case Cmd.PingDevice:
            case Cmd.Error:
            case Cmd.GetHash:
            case Cmd.DeployStart:
            case Cmd.DeployWrite:
            case Cmd.DeployFinish:
                this.log.debug({ cmd }, "OTA reply outside a deploy: ignored")
                return
            default:
                // D2C, Jacdac frames: not used by devs-iot; never acted on.
                this.log.debug({ cmd }, "OTA message ignored")
        }
    }

    private apply(out: { send: Array<[number, Buffer]>; end?: boolean; result?: RunResult }): void {
        this.send(out.send, out.end)
        if (out.result) this.finishRun(out.result)
    }

    private finishRun(r: RunResult): void {
        const done = this.runDone
        this.run = undefined
        this.runDone = undefined
        done?.(r)
        if (this.ending) this.close("deploy over")
    }

    // Several commands and maybe the WebSocket close in one write, so the
    // board handles them together (before its new program can start).
    private send(cmds: Array<[number, Buffer]>, end = false): void {
        if (this.ended || this.socket.destroyed) return
        const frames = cmds.map(([c, p]) => encodeFrame(OP_BINARY, this.session.command(c, p)))
        if (end) {
            // Keep reading: the board still answers what came before the close.
            frames.push(closeFrame(1000))
            clearInterval(this.streamTimer)
            this.ending = true
        }
        if (frames.length) this.socket.write(Buffer.concat(frames))
    }

    private logLine(line: string): void {
        const l = classify(line)
        if (l.kind === "console") {
            const extra = this.consoleBudget.pass("console", performance.now())
            if (extra) this.log.info({ console: l.text, ...extra }, "board console")
        } else this.log.debug({ runtime: l.text }, "board runtime")
        this.gateway.emit("log", this.id, l.kind, l.text)
    }

    private flushLog(): void {
        for (const line of this.splitter.flush()) this.logLine(line)
    }

    private flushReport(): void {
        if (this.reportTimer) clearTimeout(this.reportTimer)
        this.reportTimer = undefined
        if (!this.report.length) return
        const text = Buffer.concat(this.report).toString("utf8")
        this.report = []
        this.reportBytes = 0
        const e = parseException(text)
        if (!e) return
        this.log.warn({ exception: e.name, message: e.message, stack: e.stack, program: e.program }, "board exception")
        this.gateway.emit("exception", this.id, e)
    }
}

function streamMask(): Buffer {
    const b = Buffer.alloc(2)
    b.writeUInt16LE(STREAM_MASK)
    return b
}
