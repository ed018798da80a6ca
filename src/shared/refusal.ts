// Why the server refused a connection, told to devs-iot clients only
// (docs/protocol.md, "Extensions"): one line, then the server closes.
//
//   !refused <reason>\n     reason: lowercase letters and "-", at most 32
//
// A v1 peer never gets one: the server sends it only after the devs-iot
// probe (or the extension handshake) showed a devs-iot client. `!auth
// refused` (the older form, sent when a client's proof does not verify)
// means wrong-key. A refusal sent before the client has authenticated the
// server can be forged by anyone on the path: a client logs it as what the
// server says and keeps retrying with its back-off; only a refusal on a
// sealed link (after the server proved the key) is known to be the server's.

import { parseLine } from "./codec.js"
import { LineFramer } from "./framer.js"
import { PROBE_BLANKS } from "./hello.js"

// Reasons: auth-required, wrong-key, id-in-use, revoked, unknown-id,
// server-full, encryption-required (see refusalText).

export function refusalLine(reason: string): string {
    return "!refused " + reason + "\n"
}

// The reason a refusal line gives ("unspecified" when it gives none we can
// show), or undefined when the line is not a refusal.
export function parseRefusal(text: string): string | undefined {
    if (text === "!auth refused") return "wrong-key"
    if (text.indexOf("!refused") !== 0) return undefined
    if (text.length === 8) return "unspecified"
    if (text.charCodeAt(8) !== 32) return undefined
    let end = text.indexOf(" ", 9)
    if (end < 0) end = text.length
    const r = text.slice(9, end)
    return plainReason(r) ? r : "unspecified"
}

function plainReason(r: string): boolean {
    if (r.length === 0 || r.length > 32) return false
    for (let i = 0; i < r.length; i++) if ("abcdefghijklmnopqrstuvwxyz-".indexOf(r.charAt(i)) < 0) return false
    return true
}

// What a reason means, for a client's log.
export function refusalText(reason: string): string {
    switch (reason) {
        case "auth-required":
            return "this id has a key on the server: give this client its key"
        case "wrong-key":
            return "the server did not accept this client's key (wrong key, or the id's key was changed)"
        case "id-in-use":
            return "another connection with this id is live"
        case "revoked":
            return "this id or its key was revoked by the server's operator"
        case "unknown-id":
            return "the server does not know this id"
        case "server-full":
            return "the server holds as many client ids as it may"
        case "encryption-required":
            return "this id must encrypt: give this client encrypt"
    }
    return "no reason given (" + reason + ")"
}

// The log text of a refusal a client received. `authenticated`: it came on a
// sealed link, so it is the server's; otherwise it is only a hint.
export function refusalNotice(reason: string, authenticated: boolean): string {
    return "the server refused this connection: " + refusalText(reason) + (authenticated ? " (authenticated)" : " (says the server; not authenticated, so only a hint: retrying)")
}

// The server's side, for a socket it refuses right after the id line: a
// devs-iot client (its probe of PROBE_BLANKS blank lines arrives within
// timeout/4) is told why; anything else (a v1 line, nothing in time) is
// closed without a word.
export class ProbeRefusal {
    private framer = new LineFramer(512)
    private blanks = 0
    private deadline: number
    private out = ""
    private done = false

    constructor(readonly reason: string, timeout: number, now: number) {
        this.deadline = now + Math.floor(timeout / 4)
    }

    push(chunk: Buffer): void {
        if (!this.done) this.framer.push(chunk)
    }

    // "told": send pollTransmit(), then close; "silent": close at once.
    step(now: number): string | undefined {
        if (this.done) return undefined
        while (true) {
            const f = this.framer.next()
            if (f === undefined) break
            if (f.kind === "too-long" || parseLine(f.line).kind !== "keepalive") return this.end("silent")
            this.blanks++
            if (this.blanks >= PROBE_BLANKS) {
                this.out = refusalLine(this.reason)
                return this.end("told")
            }
        }
        if (now >= this.deadline) return this.end("silent")
        return undefined
    }

    pollTimeout(): number {
        return this.done ? -1 : this.deadline
    }

    pollTransmit(): Buffer | undefined {
        if (this.out.length === 0) return undefined
        const b = Buffer.from(this.out)
        this.out = ""
        return b
    }

    private end(o: string): string {
        this.done = true
        return o
    }
}
