// A board's wssk side in Node, written from the runtime's C sources
// (microsoft/devicescript runtime/devicescript/network/{websock_conn,wssk,
// wssk_health}.c and devsmgr.c), to test the gateway against the protocol
// without the simulator: client frames masked, 270-byte receive buffer,
// deploy in one flash slot (the old program is gone at deploy_start; a
// program counts only once deploy_finish found every byte).
import { randomBytes } from "node:crypto"
import { connect, type Socket } from "node:net"
import { Cmd, firstNonce, nextNonce, seal, sessionKey, sha256, unseal, WSSK_MAGIC, WSSK_VERSION } from "../../src/server/ota/wssk.js"

export interface BoardOptions {
    port: number
    path: string // "/wssk/<id>"
    key: Buffer
    program?: Buffer // what runs at "boot"
    onProgram?: (image: Buffer | undefined) => void // a new program starts (undefined: none)
    replyDelay?: number // ms before each answer to a deploy_write (a slow board)
    dropAtStartOf?: number // at each deploy_start of this size: erase, then close the socket, unanswered
    dropAfterWrites?: number // once: close the socket at this deploy_write, unanswered (a board gone mid-transfer)
}

export class RefBoard {
    program: Buffer | undefined
    events: string[] = [] // "refused 403", "open", "closed", "error: ..."
    log: string[] = []
    private socket: Socket | undefined
    private key: Buffer = Buffer.alloc(0)
    private toGateway = firstNonce("to-gateway")
    private toBoard = firstNonce("to-board")
    private state: "http" | "hello" | "auth" | "open" | "closed" = "closed"
    private buf: Buffer = Buffer.alloc(0)
    private client: Buffer = Buffer.alloc(0)
    private staged: { size: number; data: Buffer[]; written: number } | undefined = undefined
    streaming = 0
    private waiters: Array<() => void> = []

    constructor(readonly opts: BoardOptions) {
        this.program = opts.program
    }

    hash(): Buffer {
        return this.program ? sha256(this.program) : Buffer.alloc(32)
    }

    // One attempt, as wsskhealth_reconnect does; resolves when it ends.
    attempt(): Promise<string> {
        this.client = randomBytes(16)
        this.toGateway = firstNonce("to-gateway")
        this.toBoard = firstNonce("to-board")
        this.state = "http"
        this.buf = Buffer.alloc(0)
        const s = connect(this.opts.port, "127.0.0.1")
        this.socket = s
        return new Promise((resolve) => {
            s.on("connect", () =>
                s.write(
                    `GET ${this.opts.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\n` +
                        `Sec-WebSocket-Key: ${randomBytes(11).toString("hex")}==\r\nSec-WebSocket-Protocol: devs-key-${this.client.toString("hex")}\r\n` +
                        "User-Agent: jacdac-c/test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
                )
            )
            s.on("data", (d: Buffer) => this.onData(d))
            s.on("error", (e) => this.event(`error: ${e.message}`))
            s.on("close", () => {
                if (this.state !== "closed") this.event("closed")
                this.state = "closed"
                resolve(this.events[this.events.length - 1] ?? "")
            })
        })
    }

    // Sends an encrypted message as the board does (after auth).
    sendRaw(plain: Buffer, tamper = false): void {
        const m = seal(this.key, this.toGateway, plain)
        nextNonce(this.toGateway)
        if (tamper) m[0] ^= 1
        this.frame(2, m)
    }

    frame(op: number, payload: Buffer): void {
        const n = payload.length
        const head = n < 126 ? Buffer.from([0x80 | op, 0x80 | n]) : Buffer.from([0x80 | op, 0x80 | 126, n >> 8, n & 255])
        const mask = randomBytes(4)
        const body = Buffer.from(payload)
        for (let i = 0; i < n; i++) body[i] ^= mask[i & 3]!
        this.socket?.write(Buffer.concat([head, mask, body]))
    }

    close(): void {
        this.socket?.destroy()
    }

    waitEvent(re: RegExp, ms: number): Promise<string> {
        return new Promise((resolve, reject) => {
            const t = setTimeout(() => reject(new Error(`board: no event ${re} within ${ms} ms; events: ${this.events.join(", ")}`)), ms)
            const check = () => {
                const e = this.events.find((x) => re.test(x))
                if (!e) return false
                clearTimeout(t)
                resolve(e)
                return true
            }
            // Asked again at each event until it matches (or the time is up).
            const waiter = () => void (check() || this.waiters.push(waiter))
            if (!check()) this.waiters.push(waiter)
        })
    }

    private event(e: string): void {
        this.events.push(e)
        for (const w of this.waiters.splice(0)) w()
    }

    private onData(d: Buffer): void {
        this.buf = Buffer.concat([this.buf, d])
        if (this.state === "http") {
            if (this.buf.length < 12) return
            if (!this.buf.subarray(0, 12).equals(Buffer.from("HTTP/1.1 101"))) {
                this.event(`refused ${this.buf.subarray(9, 12).toString()}`)
                this.state = "closed"
                this.socket?.destroy()
                return
            }
            const e = this.buf.indexOf("\r\n\r\n")
            if (e < 0) return
            this.buf = this.buf.subarray(e + 4)
            this.state = "hello"
        }
        while (this.buf.length >= 2 && this.state !== "closed") {
            if (this.buf[1]! & 0x80) return this.fail("masked server pkt")
            let len = this.buf[1]!
            let off = 2
            if (len === 127) return this.fail("packet 64k+")
            if (len === 126) {
                if (this.buf.length < 4) return
                len = this.buf.readUInt16BE(2)
                off = 4
            }
            if (off + len > 270) return this.fail("chunk overflow")
            if (this.buf.length < off + len) return
            const op = this.buf[0]! & 15
            const p = Buffer.from(this.buf.subarray(off, off + len))
            this.buf = this.buf.subarray(off + len)
            if (op === 8) {
                this.state = "closed"
                this.event("ws close")
                continue
            }
            if (op !== 2) return this.fail(`op ${op}`)
            this.message(p)
        }
    }

    private fail(msg: string): void {
        this.event(`error: ${msg}`)
        this.state = "closed"
        this.socket?.destroy()
    }

    private message(p: Buffer): void {
        if (this.state === "hello") {
            if (p.length < 24 || p.readUInt32LE(0) !== WSSK_MAGIC) return this.fail("bad magic")
            if (p.readUInt32LE(4) !== WSSK_VERSION) return this.fail("bad version")
            this.key = sessionKey(this.opts.key, this.client, p.subarray(8, 24))
            this.state = "auth"
            this.sendRaw(Buffer.alloc(32)) // the board's proof
            return
        }
        const plain = unseal(this.key, this.toBoard, p)
        nextNonce(this.toBoard)
        if (!plain) return this.fail("tag error")
        if (this.state === "auth") {
            if (plain.length < 32 || plain.some((x) => x !== 0)) return this.fail("auth non-0")
            this.state = "open"
            this.event("open")
            return
        }
        this.command(plain[0]!, plain.subarray(1))
    }

    private reply(cmd: number, payload: Buffer = Buffer.alloc(0)): void {
        this.sendRaw(Buffer.concat([Buffer.from([cmd]), payload]))
    }

    private command(cmd: number, payload: Buffer): void {
        switch (cmd) {
            case Cmd.SetStreaming:
                this.streaming = payload.readUInt16LE(0)
                return
            case Cmd.PingCloud:
                return
            case Cmd.GetHash:
                return this.reply(cmd, this.hash())
            case Cmd.DeployStart: {
                const size = payload.readUInt32LE(0)
                if (size & 31) return this.reply(Cmd.Error)
                this.program = undefined // one slot: the old program is gone
                this.opts.onProgram?.(undefined)
                this.staged = { size, data: [], written: 0 }
                this.event("deploy_start")
                if (size === this.opts.dropAtStartOf) return this.close()
                return this.reply(cmd)
            }
            case Cmd.DeployWrite: {
                const st = this.staged
                if (!st || payload.length & 31 || st.written + payload.length > st.size) {
                    this.staged = undefined
                    return this.reply(Cmd.Error)
                }
                st.data.push(Buffer.from(payload))
                st.written += payload.length
                if (st.data.length === this.opts.dropAfterWrites) {
                    this.opts.dropAfterWrites = undefined
                    return this.close()
                }
                if (this.opts.replyDelay) return void setTimeout(() => this.reply(cmd), this.opts.replyDelay)
                return this.reply(cmd)
            }
            case Cmd.DeployFinish: {
                const st = this.staged
                if (!st || st.written !== st.size) return this.reply(Cmd.Error)
                this.staged = undefined
                this.program = Buffer.concat(st.data)
                this.reply(cmd)
                this.event("program written")
                this.opts.onProgram?.(this.program)
                return
            }
            default:
                return this.reply(Cmd.Error)
        }
    }
}
