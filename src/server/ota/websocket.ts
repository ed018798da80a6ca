// The server side of RFC 6455, as much as DeviceScript's wssk client uses:
// one upgrade request, binary messages, close, ping/pong. Sans-I/O: bytes in,
// events out. Every size is bounded (the board's own messages are at most 270
// bytes, runtime/devicescript/network/websock_conn.c:19), so a peer that sends
// more is cut with an error that says what it sent.
import { createHash } from "node:crypto"

const MAX_REQUEST_BYTES = 4096 // upgrade request, headers included
const MAX_MESSAGE_BYTES = 4096 // reassembled message from the board

export class WebSocketError extends Error {
    constructor(message: string, readonly status = 400) {
        super(message)
        this.name = "WebSocketError"
    }
}

interface UpgradeRequest {
    path: string
    headers: Record<string, string> // lower-case names
}

// Parses the request head (without the blank line). Throws WebSocketError.
function parseUpgrade(head: string): UpgradeRequest {
    const lines = head.split("\r\n")
    const m = /^GET (\/\S*) HTTP\/1\.1$/.exec(lines[0] ?? "")
    if (!m) throw new WebSocketError(`not a WebSocket upgrade request: ${JSON.stringify((lines[0] ?? "").slice(0, 80))}`)
    const headers: Record<string, string> = {}
    for (const l of lines.slice(1)) {
        const i = l.indexOf(":")
        if (i <= 0) throw new WebSocketError(`malformed header line ${JSON.stringify(l.slice(0, 80))}`)
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
    }
    if ((headers["upgrade"] ?? "").toLowerCase() !== "websocket") throw new WebSocketError("missing 'Upgrade: websocket'")
    if (!headers["sec-websocket-key"]) throw new WebSocketError("missing Sec-WebSocket-Key")
    if (headers["sec-websocket-version"] !== "13") throw new WebSocketError(`unsupported Sec-WebSocket-Version ${headers["sec-websocket-version"] ?? "(none)"}`)
    return { path: m[1]!, headers }
}

export function acceptResponse(key: string, protocol: string): Buffer {
    const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64")
    return Buffer.from(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
        "latin1"
    )
}

export function refusalResponse(status: number, reason: string): Buffer {
    const text = status === 403 ? "Forbidden" : status === 404 ? "Not Found" : "Bad Request"
    return Buffer.from(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(reason)}\r\n\r\n${reason}`, "latin1")
}

export const OP_BINARY = 2
const OP_CLOSE = 8
const OP_PING = 9
export const OP_PONG = 10

// A server frame (never masked). The board refuses 64-bit lengths.
export function encodeFrame(op: number, payload: Buffer): Buffer {
    const n = payload.length
    if (n > 0xffff) throw new WebSocketError(`frame of ${n} bytes is over the board's 65535`)
    const head = n < 126 ? Buffer.from([0x80 | op, n]) : Buffer.from([0x80 | op, 126, n >> 8, n & 0xff])
    return Buffer.concat([head, payload])
}

export function closeFrame(code = 1000): Buffer {
    return encodeFrame(OP_CLOSE, Buffer.from([code >> 8, code & 0xff]))
}

type WsEvent =
    | { kind: "request"; request: UpgradeRequest }
    | { kind: "message"; data: Buffer }
    | { kind: "ping"; data: Buffer }
    | { kind: "close"; code: number }

// Decodes the byte stream of one connection: the request, then frames.
export class WsDecoder {
    private buf: Buffer = Buffer.alloc(0)
    private upgraded = false
    private fragments: Buffer[] = []
    private fragmentBytes = 0

    // Throws WebSocketError on anything outside the protocol or the bounds.
    push(chunk: Buffer): WsEvent[] {
        this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk
        const out: WsEvent[] = []
        if (!this.upgraded) {
            const end = this.buf.indexOf("\r\n\r\n")
            if (end < 0) {
                if (this.buf.length > MAX_REQUEST_BYTES) throw new WebSocketError(`upgrade request over ${MAX_REQUEST_BYTES} bytes`)
                return out
            }
            if (end > MAX_REQUEST_BYTES) throw new WebSocketError(`upgrade request over ${MAX_REQUEST_BYTES} bytes`)
            out.push({ kind: "request", request: parseUpgrade(this.buf.subarray(0, end).toString("latin1")) })
            this.buf = this.buf.subarray(end + 4)
            this.upgraded = true
        }
        for (;;) {
            const f = this.frame()
            if (!f) break
            out.push(...f)
        }
        return out
    }

    private frame(): WsEvent[] | undefined {
        const b = this.buf
        if (b.length < 2) return undefined
        const fin = (b[0]! & 0x80) !== 0
        const op = b[0]! & 0x0f
        if (b[0]! & 0x70) throw new WebSocketError("reserved bits set in a frame")
        if (!(b[1]! & 0x80)) throw new WebSocketError("unmasked frame from the client")
        let len = b[1]! & 0x7f
        let off = 2
        if (len === 127) throw new WebSocketError("frame with a 64-bit length")
        if (len === 126) {
            if (b.length < 4) return undefined
            len = b.readUInt16BE(2)
            off = 4
        }
        if (len > MAX_MESSAGE_BYTES) throw new WebSocketError(`frame of ${len} bytes is over ${MAX_MESSAGE_BYTES}`)
        if (b.length < off + 4 + len) return undefined
        const mask = b.subarray(off, off + 4)
        const data = Buffer.alloc(len)
        for (let i = 0; i < len; i++) data[i] = b[off + 4 + i]! ^ mask[i & 3]!
        this.buf = b.subarray(off + 4 + len)
        if (op >= 8) {
            if (!fin || len > 125) throw new WebSocketError("fragmented or long control frame")
            if (op === OP_CLOSE) return [{ kind: "close", code: len >= 2 ? data.readUInt16BE(0) : 1005 }]
            if (op === OP_PING) return [{ kind: "ping", data }]
            if (op === OP_PONG) return []
            throw new WebSocketError(`unknown control opcode ${op}`)
        }
        if (op === 1) throw new WebSocketError("text frame (wssk sends binary only)")
        if (op !== 0 && op !== OP_BINARY) throw new WebSocketError(`unknown opcode ${op}`)
        if (op === 0 && this.fragments.length === 0) throw new WebSocketError("continuation frame without a start")
        if (op === OP_BINARY && this.fragments.length > 0) throw new WebSocketError("new message inside a fragmented one")
        this.fragmentBytes += len
        if (this.fragmentBytes > MAX_MESSAGE_BYTES) throw new WebSocketError(`message over ${MAX_MESSAGE_BYTES} bytes`)
        this.fragments.push(data)
        if (!fin) return []
        const msg = Buffer.concat(this.fragments)
        this.fragments = []
        this.fragmentBytes = 0
        return [{ kind: "message", data: msg }]
    }
}
