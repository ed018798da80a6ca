// The board's client: the DeviceScript driver of the shared Link. It keeps
// the network up, connects (retrying forever with capped, jittered back-off),
// moves bytes between the socket and the core one line per step (yielding,
// so the VM's opcode limit is never met), blinks the heartbeat LED while the
// link is healthy, and runs the watchdog (on by default). Protocol decisions
// all live in src/shared.
//
// The interface matches the Node client: readline(), write(line, {qos,
// wait}), status(), connected(), onStatus, connects, close().
import * as ds from "@devicescript/core"
import { Backoff, boardDefaults, checkClientId, framingBudget, heapOfArch, ClientLink, LinkAuth, LinkError, LinkEvent, nextServer, parseServers, ServerAddress, CommonOptions, LinkStats, RejoinPolicy, Report, reportToken, resolveCommon, Watchdog } from "../shared/index.js"
import { WATCHDOG, WatchdogEvent } from "../shared/watchdog.js"
import type { ConnectOutcome } from "../shared/rejoin.js"
import { intIn, PORT } from "../shared/config.js"
import { REPORT_EVERY } from "../shared/report.js"
import { NO_KEYS } from "./config.js"
import { Light } from "./heartbeat.js"
import { Network, WifiNetwork } from "./network.js"
import { ConnectError, ConnectKind, errorText, TcpSocket } from "./socket.js"
import { randomBytes, randomUnit } from "./random.js"

// Authentication for a key (keyed.ts boardKeys). The type lives here: even a
// type-only import makes DeviceScript compile the module it names.
export interface BoardKeys {
    // The key to authenticate with and where a key the server pushes is
    // kept (IOT_KEYN), given the deployed key.
    store: (deployed: Buffer, encrypt: boolean) => KeyStore
}

// The key to authenticate with, and a pushed key kept (docs/security.md,
// "Key push over the link").
export interface KeyStore {
    auth(link: ClientLink): Promise<void> // sets the link's auth (setAuth) for the next connect
    failed(): void // the socket closed before the link came up
    event(e: LinkEvent): void // the link came up, or the server pushed a key
    // After events: tells the store the link came up on its key, and keeps
    // a pushed key (written and read back) before the server hears it is
    // kept. Returns what to log, or "".
    settle(link: ClientLink): Promise<string>
}

export interface WriteOptions {
    qos?: boolean
    wait?: boolean
}

export interface ClientOptions {
    id: string
    host: string // the server's address, or several ("a,b:9000"): the next is tried when a connect fails or no link comes up
    port?: number // default 8123 (for addresses that name no port)
    timeout?: number // default 2000; the same as the server's
    onStatus?: (up: boolean) => void
    network?: Network // default: the board's WiFi
    led?: ds.OutputPin // heartbeat LED (a board's pins.LED); default: the status light
    heartbeat?: boolean // default true; false when the app drives the LED itself
    watchdog?: number // ms without progress before a reboot (default WATCHDOG.dflt); 0 = off
    onWatchdog?: () => void // default ds.reboot(); tests use ds.restart()
    verbose?: boolean // log each step: WiFi, connect, outage, resend
    badWifi?: () => Promise<void> // optional hooks of the original
    badServer?: () => Promise<void>
    rejoinAfter?: number // connects in a row without an answer before a WiFi rejoin (default 3)
    backoffFirst?: number // default 250 ms, doubling...
    backoffCap?: number // ...up to 3000 ms
    link?: CommonOptions // limits (board defaults: see docs/settings.md); the rest of a Node link's settings are fixed on a board
    key?: Buffer // 32 bytes (setting IOT_KEY): authenticate, and refuse a server that does not
    encrypt?: boolean // encrypt the messages the board sends (AES-256-CCM); needs key
    keys?: BoardKeys // needed with key: boardKeys from keyed.ts (not imported here, so images without a key leave it out)
    report?: number // ms between reports of itself to a devs-iot server (report.ts); 0 = off (default 60000)
    firmware?: string // the firmware version it reports (default "unknown")
    heap?: number // the chip's GC heap in bytes, which sizes the link's buffers; default from the board's archId (limits.ts heapOfArch)
}

export class Client {
    readonly id: string
    connects = 0 // links that completed the handshake
    readonly stats: LinkStats // duplicates, dropped, bad lines, resends...
    private link: ClientLink
    private opts: ClientOptions
    private servers: ServerAddress[]
    private at = 0 // the address tried now (servers[at])
    private net: Network
    private light: Light | undefined // the heartbeat LED; none when the app drives it
    private blinks = 0
    private backoff: Backoff
    private rejoin: RejoinPolicy
    private wd: Watchdog | undefined = undefined
    private sock: TcpSocket | undefined = undefined
    private closed = false
    private started = false
    // Wake-ups: `dirty` is set before every emit, because an emit with no
    // fiber waiting is lost.
    private wake = ds.emitter<number>()
    private dirty = false
    private changed = ds.emitter<number>() // app-visible: written, readable, status
    private onSocket: () => void
    private onData: (b: Buffer) => void
    private refusal = "" // the server's last refusal, logged with the retry
    private reportEvery: number // ms between reports, 0: none
    private reportAt = -1 // when the next report is due; -1: none (link down)
    private rawCap: number // received bytes held not yet framed (limits.ts, framingBudget)
    private results: { [ticket: string]: LinkError | null } = {} // null: done; else why it failed
    private keyStore: KeyStore | undefined = undefined

    constructor(opts: ClientOptions) {
        const p = checkClientId(opts.id)
        if (p !== "") throw new LinkError("ECONFIG", "id: " + p)
        if (typeof opts.host !== "string" || opts.host === "") throw new LinkError("ECONFIG", "host must be a non-empty string")
        const port = intIn("port", opts.port, PORT.dflt, PORT.min, PORT.max)
        this.reportEvery = intIn("report", opts.report, REPORT_EVERY.dflt, REPORT_EVERY.min, REPORT_EVERY.max)
        const lo: CommonOptions = opts.link || {}
        if (opts.timeout !== undefined) lo.timeout = opts.timeout
        if (opts.encrypt === true) lo.encrypt = true
        const arch = ds._dcfgString("archId")
        const heap = opts.heap !== undefined ? opts.heap : heapOfArch(arch)
        const cfg = resolveCommon(lo, boardDefaults(heap))
        const budget = framingBudget({
            heap: heap,
            maxLineBytes: cfg.maxLineBytes,
            buffers: cfg.maxReceivedBytes + cfg.maxBacklogBytes + cfg.maxQueuedBytes + cfg.maxInflightBytes,
        })
        this.rawCap = budget.bytes
        this.id = opts.id
        this.log("framing buffer " + budget.bytes + " bytes (" + arch + " heap " + heap + ", line limit " + cfg.maxLineBytes + ")")
        if (budget.short > 0)
            this.log("the heap is " + budget.short + " bytes short for these link settings: lower maxLineBytes, maxReceivedBytes, maxBacklogBytes, maxQueuedBytes or maxInflightBytes")
        this.opts = opts
        const sl = parseServers(opts.host, port)
        if (sl.problem !== "") throw new LinkError("ECONFIG", "host: " + sl.problem)
        this.servers = sl.list
        // A new epoch (8 random hex digits) per run: this id sequence starts at 00.
        this.link = new ClientLink(cfg, randomBytes(4).toString("hex"), opts.id)
        if (opts.key !== undefined) {
            if (opts.key.length !== 32) throw new LinkError("ECONFIG", "key must be 32 bytes")
            if (!opts.keys) throw new LinkError("ECONFIG", NO_KEYS)
            this.keyStore = opts.keys.store(opts.key, opts.encrypt === true)
        }
        this.stats = this.link.stats
        this.net = opts.network || new WifiNetwork()
        if (opts.heartbeat !== false) this.light = new Light(opts.led)
        this.backoff = new Backoff(opts.backoffFirst || 250, opts.backoffCap || 3000)
        this.rejoin = new RejoinPolicy(opts.rejoinAfter || 3)
        const self = this
        this.onSocket = function () {
            self.kick()
        }
        // Chunks go straight into the core's framer (which drops over-long
        // lines as they arrive); the bytes not yet framed are capped.
        this.onData = function (b: Buffer) {
            if (self.link.unframed() > self.rawCap && self.sock) {
                // The firmware fell this far behind the socket: holding more
                // would exhaust the heap, and dropping raw bytes would splice
                // lines. An outage loses nothing (qos lines are resent).
                self.say("more than " + self.rawCap + " received bytes not yet read: closing the link")
                self.sock.close()
                return
            }
            self.link.receive(b, ds.millis())
            self.note("received")
            self.kick()
        }
        this.net.onLost(function () {
            self.rejoin.lostIp()
            self.log("network: WiFi lost its IP address")
        })
    }

    // Starts the link's fibers; returns at once.
    start(): void {
        if (this.started || this.closed) return
        this.started = true
        const self = this
        setTimeout(async function () {
            await self.run()
        }, 0)
        // The heartbeat: blinks while the link is healthy, whatever the
        // traffic (the link goes down after `timeout` ms without anything
        // from the server); off while it is down and once closed.
        const light = this.light
        if (light)
            setTimeout(async function () {
                let on = false
                while (true) {
                    const up = !self.closed && self.link.status()
                    if (up || on) {
                        on = up && !on
                        if (up) self.blinks++
                        light.set(on ? 0x002000 : 0)
                    }
                    if (self.closed) return
                    await ds.sleep(HEARTBEAT_MS)
                }
            }, 0)
        const limit = this.opts.watchdog === undefined ? WATCHDOG.dflt : this.opts.watchdog
        if (limit) {
            // Reboots the board after `limit` ms without progress.
            const wd = new Watchdog(limit, ds.millis())
            this.wd = wd
            setTimeout(async function () {
                while (true) {
                    await ds.sleep(1000)
                    if (self.closed) return
                    if (!wd.expired(ds.millis())) continue
                    self.log("watchdog: no progress for " + limit + " ms, rebooting")
                    if (self.opts.onWatchdog) self.opts.onWatchdog()
                    else ds.reboot()
                    return
                }
            }, 0)
        }
    }

    status(): boolean {
        return this.link.status()
    }

    // Heartbeat blinks so far.
    beats(): number {
        return this.blinks
    }


    async connected(): Promise<void> {
        while (!this.link.status()) {
            if (this.closed) throw new LinkError("ECLOSED", "client closed")
            await ds.wait(this.changed, 1000)
        }
    }

    // Resolves when the server ACKed the line (qos) or it went to the socket
    // (no qos); waits across outages. Throws LinkError for a bad line or a
    // full queue (EQUEUEFULL) and ECLOSED after close().
    async write(line: string, opts?: WriteOptions): Promise<void> {
        const qos = !opts || opts.qos !== false // default true
        const wait = !opts || opts.wait !== false // default true
        const t = "" + this.link.write(line, qos, wait)
        this.kick()
        while (true) {
            const r = this.results[t]
            if (r !== undefined) {
                delete this.results[t]
                if (r === null) return
                throw r
            }
            await ds.wait(this.changed, 1000)
        }
    }

    // The next line from the server, without "\n"; waits across outages.
    async readline(): Promise<string> {
        while (true) {
            const s = this.link.read(ds.millis())
            if (s !== undefined) {
                this.kick() // room again
                return s
            }
            if (this.closed) throw new LinkError("ECLOSED", "client closed")
            await ds.wait(this.changed, 1000)
        }
    }

    // Stops reconnecting and the watchdog (its fiber ends); pending calls throw ECLOSED.
    async close(): Promise<void> {
        if (this.closed) return
        this.closed = true
        this.link.close(ds.millis())
        this.drainEvents()
        if (this.sock) this.sock.close()
        this.kick()
        this.changed.emit(0)
    }

    // ---- inside

    private say(s: string): void {
        if (this.opts.verbose) this.log(s)
    }

    // Always logged.
    private log(s: string): void {
        console.log("devs-iot " + this.id + ": " + s)
    }

    // Tells the watchdog what happened; only real progress counts (see
    // src/shared/watchdog.ts).
    private note(e: WatchdogEvent): void {
        if (this.wd) this.wd.note(e, ds.millis())
    }

    // An attempt that brought no link up: the rejoin policy and the watchdog
    // hear how it failed, and the next server address is tried (several
    // gateways), also when a socket opened there but no link came up.
    private failed(o: ConnectOutcome): void {
        this.rejoin.failed(o)
        this.note(o)
        this.at = nextServer(this.at, this.servers.length)
    }

    private kick(): void {
        this.dirty = true
        this.wake.emit(0)
    }

    // Sleeps `ms` (a back-off: not progress), waking early on close().
    private async pause(ms: number): Promise<void> {
        const end = ds.millis() + ms
        this.note("backoff")
        while (!this.closed && ds.millis() < end) {
            const left = end - ds.millis()
            await ds.sleep(Math.min(left, 500))
        }
    }

    private async run(): Promise<void> {
        const timeout = this.link.cfg.timeout
        while (!this.closed) {
            if (this.rejoin.shouldRejoin()) {
                // Always logged: the board drops WiFi only for a reason.
                this.log("network: " + this.rejoin.reason() + ": rejoining " + this.net.name)
                this.note("rejoin")
                await this.net.rejoin(4 * timeout)
                this.rejoin.rejoined()
            }
            if (!(await this.net.waitUp(2 * timeout))) {
                this.note("waitingForWifi")
                this.say("network: no IP yet")
                if (this.opts.badWifi) await this.opts.badWifi()
                continue
            }
            const server = this.servers[this.at]
            this.say("connecting to " + server.host + ":" + server.port)
            let sock: TcpSocket | undefined = undefined
            try {
                sock = await TcpSocket.connect(server.host, server.port, timeout, this.rawCap, this.onSocket)
            } catch (e) {
                const kind: ConnectKind = e instanceof ConnectError ? e.kind : "noAnswer"
                this.failed(kind)
                const delay = this.backoff.next(randomUnit())
                this.say(errorText(e) + (kind === "refused" ? " (the server is down, WiFi is fine)" : kind === "noAnswer" ? " (no answer)" : "") + "; retry in " + delay + " ms")
                if (this.opts.badServer) await this.opts.badServer()
                await this.pause(delay)
                continue
            }
            if (this.closed) {
                sock.close()
                break
            }
            this.sock = sock
            const before = this.link.connects
            const ks = this.keyStore
            if (ks) await ks.auth(this.link)
            this.link.open(ds.millis())
            sock.attach(this.onData)
            try {
                await this.serve(sock)
            } catch (e) {
                // An exception on this link (crypto, a line) must not stop
                // the board: close the socket, log, and connect again.
                this.log("error on the link, closing it: " + errorText(e))
                sock.close()
            }
            this.sock = undefined
            const why = sock.error || "closed"
            this.link.socketClosed(ds.millis(), why)
            this.drainEvents()
            // Only a link that stayed up resets the back-off: connect-then-refused is a failure.
            this.backoff.linkDown(ds.millis(), timeout)
            // A socket that opened proves the network works, handshake or not:
            // no rejoin, and progress for the watchdog (the server is down or
            // hung). A link that came up told the rejoin policy then (an IP
            // lost since must still lead to a rejoin).
            if (this.link.connects === before) {
                this.failed("noLink")
                if (ks) ks.failed()
            }
            if (this.closed) break
            const delay = this.backoff.next(randomUnit())
            // A refusal is always logged, on the 1st, 2nd, 4th... in a row.
            if (this.refusal !== "" && this.backoff.shouldReport()) this.log(this.refusal + "; retry in " + delay + " ms")
            this.refusal = ""
            this.say("link down (" + why + "); reconnect in " + delay + " ms")
            await this.pause(delay)
        }
    }

    // Runs one socket until it closes.
    private async serve(sock: TcpSocket): Promise<void> {
        const link = this.link
        let steps = 0
        while (true) {
            this.dirty = false
            let now = ds.millis()
            while (link.step(now)) {
                if (++steps % 8 === 0) {
                    await this.flush(sock)
                    await ds.sleep(0)
                    now = ds.millis()
                }
            }
            const due = link.pollTimeout()
            if (due >= 0 && due <= now) link.handleTimeout(now)
            this.maybeReport(now)
            const ks = this.keyStore
            if (ks) {
                const m = await ks.settle(link)
                if (m !== "") this.log(m)
            }
            await this.flush(sock)
            if (sock.state === "closed" || this.closed) return
            if (this.dirty) continue
            const next = link.pollTimeout()
            const wait = next < 0 ? 1000 : next - ds.millis()
            if (wait > 0) await ds.wait(this.wake, Math.min(wait, 1000))
        }
    }

    // The board's report of itself; the Link sends it only to a devs-iot
    // server. No heap or reset-reason figure: the runtime offers neither.
    private maybeReport(now: number): void {
        const every = this.reportEvery
        if (every <= 0 || this.reportAt < 0 || now < this.reportAt || !this.link.status()) return
        this.reportAt = now + every
        const r: Report = {
            firmware: reportToken(this.opts.firmware || ""),
            uptime: Math.floor(now / 1000),
            reconnects: Math.max(this.link.connects - 1, 0),
        }
        const rssi = this.net.rssi()
        if (rssi !== undefined) r.rssi = rssi
        this.link.sendReport(r)
    }

    private async flush(sock: TcpSocket): Promise<void> {
        const now = ds.millis()
        // Lines the app took with readline() have been handled by now: its
        // fiber ran until it waited again. ACK them.
        this.link.release()
        while (sock.state === "open") {
            const b = this.link.pollTransmit(now)
            if (b === undefined) break
            try {
                await sock.send(b, this.link.cfg.timeout)
            } catch (e) {
                this.say(errorText(e))
                break
            }
        }
        this.drainEvents()
    }

    private drainEvents(): void {
        let app = false
        while (true) {
            const e = this.link.pollEvent()
            if (!e) break
            if (this.keyStore) this.keyStore.event(e)
            // A keepalive needs nothing: the heartbeat follows link.status().
            if (e.type === "written") {
                this.results["" + e.ticket] = null
                app = true
            } else if (e.type === "failed") {
                this.results["" + e.ticket] = e.error
                app = true
            } else if (e.type === "readable") {
                app = true
            } else if (e.type === "up") {
                this.rejoin.connected()
                this.backoff.linkUp(ds.millis())
                this.connects = this.link.connects
                this.note("linkUp")
                this.reportAt = ds.millis() // the first report right after the link comes up
                this.say("link up (server speaks " + e.peer + ", connect " + this.link.connects + ")")
                if (this.opts.onStatus) this.opts.onStatus(true)
                app = true
            } else if (e.type === "down") {
                this.say("link down: " + e.reason)
                if (this.opts.onStatus) this.opts.onStatus(false)
                app = true
            } else if (e.type === "close") {
                if (this.sock) this.sock.close()
            } else if (e.type === "notice") {
                // A failed authentication and a refused line are always logged, verbose or not.
                if (e.code === "refused") this.refusal = e.detail
                else if (e.code === "auth") this.log("authentication failed: " + e.detail)
                else if (e.code === "too-long" || e.code === "line-refused") this.log(e.code + ": " + e.detail)
                else this.say(e.code + ": " + e.detail)
            }
        }
        if (app) this.changed.emit(0)
    }
}

// The heartbeat LED changes every HEARTBEAT_MS while the link is up.
const HEARTBEAT_MS = 500
