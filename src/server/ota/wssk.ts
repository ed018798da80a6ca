// The gateway's half of DeviceScript's wssk protocol (version 2), as the
// board's runtime implements it (runtime/devicescript/network/wssk.c and
// wssk_health.c in microsoft/devicescript; docs/devicescript.md, "The runtime's gateway channel (wssk)", has the detail):
// after the WebSocket upgrade, the gateway sends a hello with a random seed;
// both sides derive a session key from the board's master key and both
// randoms; each side proves the key with 32 encrypted zero bytes; every later
// message is AES-256-CCM with a counter nonce per direction.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto"

export const WSSK_MAGIC = 0xcee428ca
export const WSSK_VERSION = 2
export const KEY_BYTES = 32
const NONCE_BYTES = 13
const TAG_BYTES = 4
const AUTH_BYTES = 32
const SEED_BYTES = 16
// The board holds a whole WebSocket frame in 270 bytes (websock_conn.c:19):
// frame head (4) + plain text + tag (4).
export const MAX_TO_BOARD = 270 - 4 - TAG_BYTES

export const Cmd = {
    Error: 0xff,
    SetStreaming: 0x90,
    PingDevice: 0x91,
    PingCloud: 0x92,
    GetHash: 0x93,
    DeployStart: 0x94,
    DeployWrite: 0x95,
    DeployFinish: 0x96,
    C2d: 0x97,
    D2c: 0x98,
    JacdacPacket: 0x99,
    Dmesg: 0x9a,
    ExceptionReport: 0x9b,
} as const

export const Streaming = { Jacdac: 0x1, Dmesg: 0x2, Exceptions: 0x100 } as const

export class WsskError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "WsskError"
    }
}

// The board's random half, from `Sec-WebSocket-Protocol: devs-key-<32 hex>`.
export function clientRandom(protocol: string | undefined): Buffer {
    const m = /^devs-key-([0-9a-fA-F]{32})$/.exec(protocol ?? "")
    if (!m) throw new WsskError(`Sec-WebSocket-Protocol must be devs-key-<32 hex digits>, got ${JSON.stringify((protocol ?? "").slice(0, 80))}`)
    return Buffer.from(m[1]!, "hex")
}

export function sessionKey(master: Buffer, client: Buffer, seed: Buffer): Buffer {
    return Buffer.from(hkdfSync("sha256", master, Buffer.alloc(0), Buffer.concat([client, seed]), KEY_BYTES))
}

export function firstNonce(direction: "to-gateway" | "to-board"): Buffer {
    const n = Buffer.alloc(NONCE_BYTES)
    n[0] = direction === "to-gateway" ? 1 : 2
    return n
}

// Big-endian increment over the 13 nonce bytes (wssk.c:105-115).
export function nextNonce(n: Buffer): void {
    for (let i = NONCE_BYTES - 1; i >= 0; i--) {
        if (n[i]! < 0xff) {
            n[i]!++
            return
        }
        n[i] = 0
    }
}

export function seal(key: Buffer, nonce: Buffer, plain: Buffer): Buffer {
    const c = createCipheriv("aes-256-ccm", key, nonce, { authTagLength: TAG_BYTES })
    const body = Buffer.concat([c.update(plain), c.final()])
    return Buffer.concat([body, c.getAuthTag()])
}

// The plain text, or undefined when the tag does not match.
export function unseal(key: Buffer, nonce: Buffer, msg: Buffer): Buffer | undefined {
    if (msg.length < TAG_BYTES) return undefined
    const d = createDecipheriv("aes-256-ccm", key, nonce, { authTagLength: TAG_BYTES })
    d.setAuthTag(msg.subarray(msg.length - TAG_BYTES))
    const body = d.update(msg.subarray(0, msg.length - TAG_BYTES))
    try {
        d.final()
        return body
    } catch {
        return undefined
    }
}

export function sha256(b: Buffer): Buffer {
    return createHash("sha256").update(b).digest()
}

type Received = { kind: "authenticated" } | { kind: "command"; cmd: number; payload: Buffer }

// One gateway session with one board; sans-I/O. Throws WsskError on a bad tag,
// a bad proof or an empty message: the caller closes the connection, as the
// board does (one forgery try per session).
export class GatewaySession {
    readonly seed: Buffer
    private key: Buffer
    private toBoard = firstNonce("to-board")
    private toGateway = firstNonce("to-gateway")
    private authenticated = false

    constructor(master: Buffer, client: Buffer, seed: Buffer = randomBytes(SEED_BYTES)) {
        if (master.length !== KEY_BYTES) throw new WsskError(`master key must be ${KEY_BYTES} bytes`)
        this.seed = seed
        this.key = sessionKey(master, client, seed)
    }

    get isAuthenticated(): boolean {
        return this.authenticated
    }

    // The first two messages: the hello, then the gateway's proof (the
    // reference gateway sends both at once; the board handles them in order).
    opening(): Buffer[] {
        const hello = Buffer.alloc(8 + SEED_BYTES)
        hello.writeUInt32LE(WSSK_MAGIC, 0)
        hello.writeUInt32LE(WSSK_VERSION, 4)
        this.seed.copy(hello, 8)
        return [hello, this.encrypt(Buffer.alloc(AUTH_BYTES))]
    }

    encrypt(plain: Buffer): Buffer {
        if (plain.length > MAX_TO_BOARD) throw new WsskError(`message of ${plain.length} bytes is over the board's ${MAX_TO_BOARD}`)
        const out = seal(this.key, this.toBoard, plain)
        nextNonce(this.toBoard)
        return out
    }

    command(cmd: number, payload: Buffer = Buffer.alloc(0)): Buffer {
        return this.encrypt(Buffer.concat([Buffer.from([cmd]), payload]))
    }

    receive(msg: Buffer): Received {
        const plain = unseal(this.key, this.toGateway, msg)
        nextNonce(this.toGateway)
        if (!plain) throw new WsskError(this.authenticated ? "message with a bad tag" : "bad key: the board's proof does not decrypt")
        if (!this.authenticated) {
            if (plain.length < AUTH_BYTES || plain.subarray(0, AUTH_BYTES).some((x) => x !== 0)) throw new WsskError("bad proof from the board")
            this.authenticated = true
            return { kind: "authenticated" }
        }
        if (plain.length < 1) throw new WsskError("empty message")
        return { kind: "command", cmd: plain[0]!, payload: plain.subarray(1) }
    }
}

// A DeviceScript image as the board's deploy accepts it (devsmgr.c:220-301,
// devs_empty_program): the "DevS" magic, a size that is a multiple of 32.
const DEVS_MAGIC = Buffer.from([0x44, 0x65, 0x76, 0x53, 0x0a, 0x6e, 0x29, 0xf1])
export const MAX_IMAGE_BYTES = 512 * 1024

export function checkImage(image: Buffer, name = "image"): void {
    if (image.length < 128) throw new WsskError(`${name}: ${image.length} bytes is too short for a DeviceScript image`)
    if (!image.subarray(0, 8).equals(DEVS_MAGIC)) throw new WsskError(`${name}: not a DeviceScript image (bad magic ${image.subarray(0, 8).toString("hex")})`)
    if (image.length % 32 !== 0) throw new WsskError(`${name}: size ${image.length} is not a multiple of 32`)
    if (image.length > MAX_IMAGE_BYTES) throw new WsskError(`${name}: ${image.length} bytes is over ${MAX_IMAGE_BYTES}`)
}
