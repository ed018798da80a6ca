// The server's side of a keyed id's handshake (auth.ts), run on a new socket
// after its id line and before the socket reaches the id's Link. Kept apart
// from the Link so that a newcomer for a keyed id whose link is live can
// prove the key without touching that link: only once it has authenticated
// does it take the link over (fault 9).
//
// Outcomes: "auth" (the client proved the key; the server's proof is the last
// line this sends), "hello" (a devs-iot client without a key: plain, if the
// id may stay plain), "v1" (no probe: a v1 client; plain likewise), "fail"
// (wrong key, a bad answer, or no answer in time: close the socket).
//
// An id may have two keys while its key is changed (rotation): a proof by
// either authenticates, and the outcome says which (keyIndex), so that the
// session ends when that key is removed.

import { challengeLine, deriveSession, newNonce, proof, proofLine, proofOk, Transcript, validNonce } from "./auth.js"
import { parseLine } from "./codec.js"
import { Crypto } from "./crypto.js"
import { HandoffFramer } from "./framer.js"
import { helloField, parseHello, ProbeCount } from "./hello.js"
import { Session } from "./seal.js"
import { parseMax } from "./limits.js"

const REFUSED_LINE = "!auth refused\n"

export type AuthOutcome =
    | { kind: "auth"; session: Session; peerEpoch: string; rest: Buffer[]; keyIndex: number; mustEncrypt: boolean; peerMax: number }
    | { kind: "hello"; peerEpoch: string; rest: Buffer[]; peerMax: number }
    | { kind: "v1"; rest: Buffer[] }
    | { kind: "fail"; reason: string }

export class ServerAuth {
    private framer = new HandoffFramer(512)
    private phase: "probe" | "answer" | "done" = "probe"
    private probe = new ProbeCount()
    private ns = ""
    private out = ""
    private deadline: number
    private ms: string // the max= field of the challenge, "" for none

    constructor(
        readonly crypto: Crypto,
        readonly id: string,
        readonly keys: Buffer[], // one, or two during a rotation
        readonly epoch: string, // the server's epoch for this id (its Link's)
        readonly timeout: number,
        readonly encrypt: boolean, // encrypt the messages the server sends
        now: number,
        readonly mustEncrypt?: boolean, // the id must encrypt: asked of the client, checked per line
        readonly maxLineBytes: number = -1, // announced in the challenge (limits.ts); -1: not
    ) {
        // A v1 client sends a blank line per timeout/4; a devs-iot probe comes with the id.
        this.deadline = now + Math.floor(timeout / 4)
        this.ms = maxLineBytes > 0 ? "" + maxLineBytes : ""
    }

    push(chunk: Buffer): void {
        this.framer.push(chunk)
    }

    // Handles the lines received so far; an outcome ends the handshake.
    step(now: number): AuthOutcome | undefined {
        while (this.phase !== "done") {
            const f = this.framer.next()
            if (f === undefined) return undefined
            if (f.kind === "too-long") return this.end({ kind: "fail", reason: "over-long line during the handshake" })
            const l = parseLine(f.line)
            if (this.phase === "probe") {
                if (l.kind !== "keepalive") {
                    const rest = this.framer.takeRest()
                    const all: Buffer[] = [Buffer.from(f.line.toString("utf-8") + "\n")]
                    for (let i = 0; i < rest.length; i++) all.push(rest[i])
                    return this.end({ kind: "v1", rest: all })
                }
                if (this.probe.blank()) {
                    this.ns = newNonce(this.crypto)
                    this.out += challengeLine(this.epoch, this.ns, this.ms === "" ? undefined : this.maxLineBytes)
                    this.phase = "answer"
                    this.deadline = now + this.timeout
                }
                continue
            }
            if (l.kind === "keepalive") continue
            const text = l.kind === "ext" ? l.text : ""
            const ec = parseHello(text)
            if (ec === undefined || ec === "") return this.end({ kind: "fail", reason: "expected a hello answering the challenge" })
            const nc = helloField(text, "auth")
            const mac = helloField(text, "mac")
            if (nc === "" && mac === "") return this.end({ kind: "hello", peerEpoch: ec, rest: this.framer.takeRest(), peerMax: parseMax(text) })
            if (!validNonce(nc)) return this.end({ kind: "fail", reason: "bad client nonce in the answer" })
            const t: Transcript = { id: this.id, ns: this.ns, nc: nc, es: this.epoch, ec: ec, ms: this.ms, mc: helloField(text, "max") }
            let k = -1
            for (let i = 0; i < this.keys.length && k < 0; i++) if (proofOk(this.crypto, this.keys[i], "client", t, mac)) k = i
            if (k < 0) {
                // Tells the client why, so a board's log says so. Forging it
                // only closes a handshake, which an attacker can do anyway.
                this.out += REFUSED_LINE
                return this.end({ kind: "fail", reason: "wrong key: the client's proof does not verify" })
            }
            const must = this.mustEncrypt === true
            this.out += proofLine(proof(this.crypto, this.keys[k], "server", t), must)
            const session = deriveSession(this.crypto, this.keys[k], "server", t, this.encrypt || must)
            return this.end({ kind: "auth", session: session, peerEpoch: ec, rest: this.framer.takeRest(), keyIndex: k, mustEncrypt: must, peerMax: parseMax(text) })
        }
        return undefined
    }

    handleTimeout(now: number): AuthOutcome | undefined {
        if (this.phase === "done" || now < this.deadline) return undefined
        if (this.phase === "probe") return this.end({ kind: "v1", rest: this.framer.takeRest() })
        return this.end({ kind: "fail", reason: "no answer to the challenge within " + this.timeout + " ms" })
    }

    pollTimeout(): number {
        return this.phase === "done" ? -1 : this.deadline
    }

    pollTransmit(): Buffer | undefined {
        if (this.out.length === 0) return undefined
        const b = Buffer.from(this.out)
        this.out = ""
        return b
    }

    private end(o: AuthOutcome): AuthOutcome {
        this.phase = "done"
        return o
    }
}
