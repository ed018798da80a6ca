// The authentication handshake of a keyed id (docs/security.md): an
// HMAC-SHA256 challenge-response with fresh nonces from both ends, mutual
// (the server proves the key too), and the per-direction session keys
// derived with HKDF-SHA256. It runs inside the devs-iot extension handshake
// (hello.ts), so a v1 peer never sees any of it:
//
//   client: <id>\n + 10 blank lines                        (the probe, as ever)
//   server: !hello epoch=<Es> auth=<Ns>\n                  (the challenge)
//   client: !hello epoch=<Ec> auth=<Nc> mac=<client proof>\n
//   server: !auth mac=<server proof>\n
//   then sealed lines both ways (seal.ts)
//
// Ns, Nc: 16 random bytes each, as 32 lowercase hex digits. A proof is the
// 64-hex-digit HMAC-SHA256(K, transcript(role)), where
//   transcript(role) = "devs-iot/1 " + role + " " + Ns + " " + Nc + " "
//                      + bytes(id) + ":" + id + " " + bytes(Es) + ":" + Es + " " + Ec
//                      + " " + bytes(Ms) + ":" + Ms + " " + bytes(Mc) + ":" + Mc
// (role "client" or "server"; bytes(x): UTF-8 length in decimal; Ms, Mc: the
// max= fields of the challenge and the answer as sent or received, "" when
// absent, so a line limit changed or stripped on the path fails the proofs
// instead of making writes fail with ETOOLONG). The session
// keys: HKDF-SHA256(ikm K, salt Ns|Nc as 32 bytes, info "devs-iot/1 <dir> <use> " + id)
// for dir "c2s" / "s2c" and use "mac" / "enc".
//
// A devs-iot client without a key answers the challenge with a plain
// `!hello epoch=<Ec>`; the server then refuses it unless the id may stay plain.

import { Crypto, isHex, sameBytes } from "./crypto.js"
import { maxField } from "./hello.js"
import { DirectionKeys, Session } from "./seal.js"

const NONCE_HEX = 32
const PROOF_HEX = 64
export const KEY_BYTES = 32

// `max`: the sender's line limit (limits.ts); in the transcript as Ms / Mc.
export function challengeLine(epoch: string, ns: string, max?: number): string {
    return "!hello epoch=" + epoch + " auth=" + ns + maxField(max) + "\n"
}

export function answerLine(epoch: string, nc: string, proof: string, max?: number): string {
    return "!hello epoch=" + epoch + " auth=" + nc + " mac=" + proof + maxField(max) + "\n"
}

// `encrypt`: the server's key file says this id must encrypt (" enc=1"; a
// client that knows the field then encrypts what it sends).
export function proofLine(proof: string, encrypt?: boolean): string {
    return "!auth mac=" + proof + (encrypt === true ? " enc=1" : "") + "\n"
}

export function newNonce(crypto: Crypto): string {
    return crypto.random(NONCE_HEX / 2).toString("hex")
}

export function validNonce(s: string): boolean {
    return isHex(s, NONCE_HEX)
}

export interface Transcript {
    id: string
    ns: string
    nc: string
    es: string // the server's epoch
    ec: string // the client's epoch
    ms?: string // the max= field of the challenge ("" or absent: none)
    mc?: string // the max= field of the answer
}

export function proof(crypto: Crypto, key: Buffer, role: string, t: Transcript): string {
    const ms = t.ms === undefined ? "" : t.ms
    const mc = t.mc === undefined ? "" : t.mc
    const text =
        "devs-iot/1 " + role + " " + t.ns + " " + t.nc + " " + Buffer.from(t.id).length + ":" + t.id + " " + Buffer.from(t.es).length + ":" + t.es + " " + t.ec +
        " " + Buffer.from(ms).length + ":" + ms + " " + Buffer.from(mc).length + ":" + mc
    return crypto.hmac(key, Buffer.from(text)).toString("hex")
}

export function proofOk(crypto: Crypto, key: Buffer, role: string, t: Transcript, got: string): boolean {
    if (!isHex(got, PROOF_HEX)) return false
    return sameBytes(Buffer.from(proof(crypto, key, role, t)), Buffer.from(got))
}

function dirKeys(crypto: Crypto, key: Buffer, salt: Buffer, dir: string, id: string): DirectionKeys {
    return {
        mac: crypto.hkdf(key, salt, Buffer.from("devs-iot/1 " + dir + " mac " + id)),
        enc: crypto.hkdf(key, salt, Buffer.from("devs-iot/1 " + dir + " enc " + id)),
    }
}

// The session of one connection, for one end.
export function deriveSession(crypto: Crypto, key: Buffer, role: string, t: Transcript, encrypt: boolean): Session {
    const salt = Buffer.from(t.ns + t.nc, "hex")
    const c2s = dirKeys(crypto, key, salt, "c2s", t.id)
    const s2c = dirKeys(crypto, key, salt, "s2c", t.id)
    return role === "client" ? new Session(crypto, c2s, s2c, encrypt) : new Session(crypto, s2c, c2s, encrypt)
}

// Why a key cannot be used, or "".
export function keyProblem(key: Buffer): string {
    if (key.length !== KEY_BYTES) return "a key must be " + KEY_BYTES + " bytes, got " + key.length
    return ""
}
