// Line framing of an authenticated link (docs/security.md). After the
// handshake every line, in both directions, is sealed: messages, ACKs and
// keepalives alike, each with a per-direction sequence number that starts at
// 0 on every connection (whose keys are fresh).
//
//   !m<seq><mac><body>\n    body: the v1 line (empty: keepalive, "hh": ACK,
//                           "hh<payload>": message), as is
//   !e<seq><hex>\n          a message only, encrypted: hex of
//                           AES-256-CCM(key, nonce(seq), body) with a 16-byte tag
//
// <seq>: 8 lowercase hex digits. <mac>: 32 lowercase hex digits, the first 16
// bytes of HMAC-SHA256(macKey, ascii(<seq>) + body). nonce(seq): 13 bytes,
// 9 zero bytes then seq as 4 bytes big-endian. Each direction has its own
// keys, so a line cannot be reflected back to its sender.
//
// A receiver accepts only the next sequence number. A line that is not sealed,
// has another sequence number (replayed, reordered, dropped before it), or does
// not verify is an error that closes the connection: nothing in it is used.

import { parseLine } from "./codec.js"
import { Crypto, isHex, sameBytes } from "./crypto.js"
import { hexByte, hexDigit } from "./hex.js"
import { CCM_MAX_PLAIN } from "./limits.js"
import { LinkError } from "./errors.js"

const MAC_HEX = 32
const SEQ_HEX = 8
// Closes the connection before a sequence number could wrap; the next one has new keys.
const SEQ_MAX = 2147483647

export interface DirectionKeys {
    mac: Buffer
    enc: Buffer
}

// ok: body is the v1 line; else reason says why the line was refused.
export interface Opened {
    ok: boolean
    body: Buffer
    reason: string
}

function refuse(reason: string): Opened {
    return { ok: false, body: Buffer.alloc(0), reason: reason }
}

export class Session {
    txSeq = 0
    rxSeq = 0
    mustEncrypt = false // server: the key file says this id's messages come encrypted
    constructor(
        readonly crypto: Crypto,
        readonly tx: DirectionKeys,
        readonly rx: DirectionKeys,
        readonly encrypt: boolean,
    ) {}

    // The wire line (with "\n") for a v1 line body (without "\n").
    // `secret`: encrypted whatever `encrypt` says (a key push, rekey.ts).
    seal(body: Buffer, secret?: boolean): Buffer {
        const seq = seqHex(this.txSeq)
        this.txSeq++
        if ((this.encrypt || secret === true) && body.length > 2) {
            // resolveConfig keeps lines within this; a longer one is a bug.
            if (body.length > CCM_MAX_PLAIN) throw new LinkError("ETOOLONG", "line of " + body.length + " bytes is longer than AES-CCM can seal (" + CCM_MAX_PLAIN + ")")
            const hex = this.crypto.encrypt(this.tx.enc, nonceOf(seq), body).toString("hex")
            return Buffer.from("!e" + seq + hex + "\n")
        }
        const mac = macHex(this.crypto, this.tx.mac, seq, body)
        const out = Buffer.alloc(2 + SEQ_HEX + MAC_HEX + body.length + 1)
        out.set(Buffer.from("!m" + seq + mac), 0)
        out.set(body, 2 + SEQ_HEX + MAC_HEX)
        out[out.length - 1] = 10
        return out
    }

    // The v1 body of a received wire line (without "\n"), or why it is refused.
    // A socket's control lines (`c.out`, a SocketState's: link.ts), one
    // sealed line each, after `c.pre` (bytes sent as they are), onto
    // `parts`; returns their bytes.
    // Here rather than in the Link's pollTransmit, so that a board without
    // a key compiles none of it.
    sealControl(c: { pre: string; out: string }, parts: Buffer[]): number {
        let total = 0
        if (c.pre.length > 0) {
            const p = Buffer.from(c.pre)
            c.pre = ""
            parts.push(p)
            total = p.length
        }
        const b = Buffer.from(c.out)
        let from = 0
        while (from < b.length) {
            const nl = b.indexOf(10, from)
            const sealed = this.seal(b.slice(from, nl))
            parts.push(sealed)
            total += sealed.length
            from = nl + 1
        }
        return total
    }

    open(line: Buffer): Opened {
        const n = line.length
        if (n < 2 + SEQ_HEX || line[0] !== 33 || (line[1] !== 109 && line[1] !== 101))
            return refuse("unauthenticated line on an authenticated link")
        const seqText = line.slice(2, 2 + SEQ_HEX).toString("utf-8")
        const seq = parseSeq(seqText)
        if (seq < 0) return refuse("bad sequence number")
        if (seq !== this.rxSeq)
            return refuse("sequence " + seq + " where " + this.rxSeq + " was due (replayed, reordered or lost line)")
        let body: Buffer
        if (line[1] === 109) {
            if (n < 2 + SEQ_HEX + MAC_HEX) return refuse("bad MAC: line too short")
            const mac = line.slice(2 + SEQ_HEX, 2 + SEQ_HEX + MAC_HEX)
            body = line.slice(2 + SEQ_HEX + MAC_HEX)
            if (!sameBytes(mac, Buffer.from(macHex(this.crypto, this.rx.mac, seqText, body))))
                return refuse("bad MAC on line " + seq)
        } else {
            // No loop per character: the board's VM stops a fiber after
            // ~128K opcodes, which a per-character check of a 2 KB line meets.
            // Lowercase hex exactly when decoding and encoding again gives it back.
            const hex = line.slice(2 + SEQ_HEX).toString("utf-8")
            if (hex.length < 34 || (hex.length & 1) !== 0) return refuse("bad encrypted line " + seq)
            if (hex.length > 2 * (CCM_MAX_PLAIN + 16)) return refuse("encrypted line " + seq + " is longer than AES-CCM can seal")
            const data = hexBytes(hex)
            if (data === undefined) return refuse("bad encrypted line " + seq)
            const plain = this.crypto.decrypt(this.rx.enc, nonceOf(seqText), data)
            if (plain === undefined || plain.length < 3) return refuse("bad MAC (AES-CCM tag) on line " + seq)
            body = plain
        }
        if (this.rxSeq >= SEQ_MAX) return refuse("sequence limit reached: reconnect for new keys")
        if (this.mustEncrypt && line[1] === 109 && parseLine(body).kind === "message") return refuse("a message not encrypted, from an id that must encrypt")
        this.rxSeq++
        return { ok: true, body: body, reason: "" }
    }
}

// The bytes of lowercase hex text, or undefined when it is not exactly that.
function hexBytes(hex: string): Buffer | undefined {
    let b: Buffer
    try {
        b = Buffer.from(hex, "hex")
    } catch (e) {
        return undefined
    }
    if (b.length * 2 !== hex.length || b.toString("hex") !== hex) return undefined
    return b
}

export function seqHex(n: number): string {
    const hi = Math.floor(n / 65536)
    const lo = n - hi * 65536
    return hexByte(hi >> 8) + hexByte(hi & 255) + hexByte(lo >> 8) + hexByte(lo & 255)
}

function parseSeq(s: string): number {
    if (!isHex(s, SEQ_HEX)) return -1
    let v = 0
    for (let i = 0; i < SEQ_HEX; i++) v = v * 16 + hexDigit(s.charCodeAt(i))
    return v
}

// The 13-byte nonce of a line: 9 zero bytes, then its sequence number's 4
// bytes (`seq`: as the line carries them, seqHex).
function nonceOf(seq: string): Buffer {
    return Buffer.from("000000000000000000" + seq, "hex")
}

function macHex(crypto: Crypto, key: Buffer, seq: string, body: Buffer): string {
    const data = Buffer.alloc(SEQ_HEX + body.length)
    data.set(Buffer.from(seq), 0)
    data.set(body, SEQ_HEX)
    return crypto.hmac(key, data).slice(0, MAC_HEX / 2).toString("hex")
}
