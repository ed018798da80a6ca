// The board's client: the DeviceScript driver of the shared Link. It keeps
// the network up, connects (retrying forever with capped, jittered back-off),
// moves bytes between the socket and the core one line per step (yielding,
// so the VM's opcode limit is never met), toggles the heartbeat LED, and runs
// the opt-in watchdog. Protocol decisions all live in src/shared.
//
// The interface matches the Node client: readline(), write(line, {qos,
// wait}), status(), connected(), onStatus, connects, close().
import * as ds from "@devicescript/core"
import { boardCrypto } from "./crypto.js"
import { Backoff, boardDefaults, checkClientId, framingBudget, heapOfArch, Link, LinkError, LinkErrorCode, LinkOptions, LinkStats, RejoinPolicy, resolveConfig, Watchdog } from "../shared/index.js"
import { Heartbeat } from "./heartbeat.js"
import { Network, WifiNetwork } from "./network.js"
import { TcpSocket } from "./socket.js"
import { randomHex, randomUnit } from "./random.js"

export interface WriteOptions {
    qos?: boolean
    wait?: boolean
}

export interface ClientOptions {
    id: string
    host: string
    port?: number // default 8123
    timeout?: number // default 2000; the same as the server's
    onStatus?: (up: boolean) => void
    network?: Network // default: the board's WiFi
    led?: ds.OutputPin // heartbeat LED (a board's pins.LED); default: the status light
    watchdog?: number // ms without progress before a reboot; 0 (default) = off
    onWatchdog?: () => void // default ds.reboot(); tests use ds.restart()
    verbose?: boolean // log each step: WiFi, connect, outage, resend
    badWifi?: () => Promise<void> // optional hooks of the original
    badServer?: () => Promise<void>
    rejoinAfter?: number // failed connects in a row before a WiFi rejoin (default 3)
    backoffFirst?: number // default 250 ms, doubling...
    backoffCap?: number // ...up to 3000 ms
    link?: LinkOptions // limits (board defaults: see README)
    key?: Buffer // 32 bytes (setting IOT_KEY): authenticate, and refuse a server that does not (issue 9)
    encrypt?: boolean // encrypt the messages the board sends (AES-256-CCM); needs key
}

export class Client {
    readonly id: string
    connects = 0 // links that completed the handshake
    readonly stats: LinkStats // duplicates, dropped, bad lines, resends...
    private link: Link
    private opts: ClientOptions
    private host: string
    private port: number
    private net: Network
    private led: Heartbeat
    private backoff: Backoff
    private rejoin: RejoinPolicy
    private wd: Watchdog | undefined = undefined
    private sock: TcpSocket | undefined = undefined
    private closed = false
    private started = false
    private hung = false
    // Wake-ups: `dirty` is set before every emit, because an emit with no
    // fiber waiting is lost.
    private wake = ds.emitter<number>()
    private dirty = false
    private changed = ds.emitter<number>() // app-visible: written, readable, status
    private onSocket: () => void
    private onData: (b: Buffer) => void
    private rawCap: number // received bytes held not yet framed (limits.ts, framingBudget)
    private results: { [ticket: string]: string } = {} // "" ok, else error code
    private messages: { [ticket: string]: string } = {}

    constructor(opts: ClientOptions) {
        const p = checkClientId(opts.id)
        if (p !== "") throw new LinkError("ECONFIG", "id: " + p)
        if (typeof opts.host !== "string" || opts.host === "") throw new LinkError("ECONFIG", "host must be a non-empty string")
        const port = opts.port === undefined ? 8123 : opts.port
        if (typeof port !== "number" || Math.floor(port) !== port || port < 1 || port > 65535)
            throw new LinkError("ECONFIG", "port must be a whole number from 1 to 65535")
        const lo: LinkOptions = opts.link ? opts.link : {}
        if (opts.timeout !== undefined) lo.timeout = opts.timeout
        if (opts.encrypt === true) lo.encrypt = true
        const cfg = resolveConfig(lo, boardDefaults())
        const arch = ds._dcfgString("archId")
        const budget = framingBudget({
            heap: heapOfArch(arch),
            maxLineBytes: cfg.maxLineBytes,
            buffers: cfg.maxReceivedBytes + cfg.maxBacklogBytes + cfg.maxQueuedBytes + cfg.maxInflightBytes,
        })
        this.rawCap = budget.bytes
        console.log("devs-iot " + opts.id + ": framing buffer " + budget.bytes + " bytes (" + arch + " heap " + heapOfArch(arch) + ", line limit " + cfg.maxLineBytes + ")")
        if (budget.short > 0)
            console.log("devs-iot " + opts.id + ": the heap is " + budget.short + " bytes short for these link settings: lower maxLineBytes, maxReceivedBytes, maxBacklogBytes, maxQueuedBytes or maxInflightBytes")
        this.opts = opts
        this.id = opts.id
        this.host = opts.host
        this.port = port
        // A new epoch per run: this id sequence starts at 00.
        this.link = new Link("client", cfg, randomEpoch(), opts.id)
        if (opts.key !== undefined) {
            if (opts.key.length !== 32) throw new LinkError("ECONFIG", "key must be 32 bytes")
            this.link.setAuth({ crypto: boardCrypto, key: opts.key, encrypt: opts.encrypt === true })
        }
        this.stats = this.link.stats
        this.net = opts.network ? opts.network : new WifiNetwork()
        this.led = new Heartbeat(opts.led)
        const first = opts.backoffFirst ? opts.backoffFirst : 250
        this.backoff = new Backoff(first, opts.backoffCap ? opts.backoffCap : 3000)
        this.rejoin = new RejoinPolicy(opts.rejoinAfter ? opts.rejoinAfter : 3)
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
            self.kick()
        }
        this.net.onLost(function () {
            self.rejoin.lostIp()
            self.say("network: lost IP")
        })
        if (opts.watchdog) this.wd = new Watchdog(opts.watchdog)
    }

    // Starts the link's fibers; returns at once.
    start(): void {
        if (this.started || this.closed) return
        this.started = true
        const self = this
        setTimeout(async function () {
            await self.run()
        }, 0)
        if (this.wd) {
            this.wd.start(ds.millis())
            setTimeout(async function () {
                await self.watch()
            }, 0)
        }
    }

    status(): boolean {
        return this.link.status()
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
        const qos = opts && opts.qos !== undefined ? opts.qos : true
        const wait = opts && opts.wait !== undefined ? opts.wait : true
        const t = "" + this.link.write(line, qos, wait)
        this.kick()
        while (true) {
            const r = this.results[t]
            if (r !== undefined) {
                delete this.results[t]
                if (r === "") return
                const m = this.messages[t]
                delete this.messages[t]
                throw new LinkError(r as LinkErrorCode, m)
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

    // Stops reconnecting and the watchdog; pending calls throw ECLOSED.
    async close(): Promise<void> {
        if (this.closed) return
        this.closed = true
        if (this.wd) this.wd.stop()
        this.link.close(ds.millis())
        this.drainEvents()
        if (this.sock) this.sock.close()
        this.kick()
        this.changed.emit(0)
    }

    // For watchdog tests: the client's tasks stop moving, as a stuck await would.
    hang(): void {
        this.hung = true
    }

    // ---- inside

    private say(s: string): void {
        if (this.opts.verbose) console.log("devs-iot " + this.id + ": " + s)
    }

    private progress(): void {
        if (this.wd && !this.hung) this.wd.progress(ds.millis())
    }

    private kick(): void {
        this.dirty = true
        this.wake.emit(0)
    }

    private async watch(): Promise<void> {
        const wd = this.wd as Watchdog
        while (wd.running()) {
            await ds.sleep(1000)
            if (!wd.expired(ds.millis())) continue
            console.log("devs-iot " + this.id + ": watchdog: no progress for " + wd.limit + " ms, rebooting")
            if (this.opts.onWatchdog) this.opts.onWatchdog()
            else ds.reboot()
            return
        }
    }

    // Sleeps `ms`, feeding the watchdog: waiting out a back-off is progress.
    private async pause(ms: number): Promise<void> {
        const end = ds.millis() + ms
        while (!this.closed && ds.millis() < end) {
            this.progress()
            const left = end - ds.millis()
            await ds.sleep(left < 500 ? left : 500)
        }
    }

    private async run(): Promise<void> {
        const timeout = this.link.cfg.timeout
        while (!this.closed) {
            this.progress()
            if (this.rejoin.shouldRejoin()) {
                this.say("network: rejoining " + this.net.name)
                await this.net.rejoin(4 * timeout)
                this.rejoin.rejoined()
                this.progress()
            }
            if (!(await this.net.waitUp(2 * timeout))) {
                this.say("network: no IP yet")
                if (this.opts.badWifi) await this.opts.badWifi()
                continue
            }
            this.progress()
            this.say("connecting to " + this.host + ":" + this.port)
            let sock: TcpSocket | undefined = undefined
            try {
                sock = await TcpSocket.connect(this.host, this.port, timeout, this.rawCap, this.onSocket)
            } catch (e) {
                this.rejoin.connectFailed()
                const delay = this.backoff.next(randomUnit())
                this.say(errorText(e) + "; retry in " + delay + " ms")
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
            this.link.open(ds.millis())
            sock.attach(this.onData)
            try {
                await this.serve(sock)
            } catch (e) {
                // An exception on this link (crypto, a line) must not stop
                // the board: close the socket, log, and connect again.
                console.log("devs-iot " + this.id + ": error on the link, closing it: " + errorText(e))
                sock.close()
            }
            this.sock = undefined
            this.link.socketClosed(ds.millis(), sock.error !== "" ? sock.error : "closed")
            this.drainEvents()
            if (this.link.connects > before) {
                this.backoff.reset()
                this.rejoin.connected()
            } else this.rejoin.connectFailed()
            if (this.closed) break
            const delay = this.backoff.next(randomUnit())
            this.say("link down (" + (sock.error !== "" ? sock.error : "closed") + "); reconnect in " + delay + " ms")
            await this.pause(delay)
        }
    }

    // Runs one socket until it closes.
    private async serve(sock: TcpSocket): Promise<void> {
        const link = this.link
        let steps = 0
        while (true) {
            while (this.hung) await ds.sleep(1000)
            this.dirty = false
            let now = ds.millis()
            while (link.step(now)) {
                this.progress()
                if (++steps % 8 === 0) {
                    await this.flush(sock)
                    await ds.sleep(0)
                    now = ds.millis()
                }
            }
            const due = link.pollTimeout()
            if (due >= 0 && due <= now) link.handleTimeout(now)
            await this.flush(sock)
            if (sock.state === "closed" || this.closed) return
            if (this.dirty) continue
            const next = link.pollTimeout()
            const wait = next < 0 ? 1000 : next - ds.millis()
            if (wait > 0) await ds.wait(this.wake, wait < 1000 ? wait : 1000)
        }
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
            if (e === undefined) break
            if (e.type === "keepalive") {
                this.led.toggle()
                this.progress()
            } else if (e.type === "written") {
                this.results["" + e.ticket] = ""
                app = true
            } else if (e.type === "failed") {
                this.results["" + e.ticket] = e.error.code
                this.messages["" + e.ticket] = e.error.message
                app = true
            } else if (e.type === "readable") {
                app = true
            } else if (e.type === "up") {
                this.connects = this.link.connects
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
                if (e.code === "auth") console.log("devs-iot " + this.id + ": authentication failed: " + e.detail)
                else if (e.code === "too-long" || e.code === "refused") console.log("devs-iot " + this.id + ": " + e.code + ": " + e.detail)
                else this.say(e.code + ": " + e.detail)
            }
        }
        if (app) this.changed.emit(0)
    }
}

function errorText(e: unknown): string {
    const m = (e as { message?: unknown }).message
    return typeof m === "string" ? m : "error"
}

function randomEpoch(): string {
    return randomHex(4)
}
