// The client's end of a link (link.ts holds what both ends share): its
// handshake, its key (authentication, key push), its refusals and reports.
// The only Link a board compiles: DeviceScript compiles every method of a
// class it uses, so nothing of the server's end is in here.
//
// The client's phases (docs/protocol.md, "Handshake"), one socket:
//
//   phase         | on                                   | next
//   "first-line"  | a refusal                            | socket closed
//                 | a line no server sends (HTTP, SSH)   | socket closed
//                 | bytes, no line for 2 x timeout       | socket closed
//                 | keyed: a challenge (hello with auth=) | "auth", answer sent
//                 | keyed: anything else                 | socket closed (auth)
//                 | a plain challenge (no key)           | "asked", plain hello sent
//                 | a hello                              | "up", hello sent
//                 | any other line (a v1 server)         | "up", the line handled as data
//   "asked"       | a refusal                            | socket closed
//                 | a keepalive (it was let in)          | "up"
//                 | anything else                        | socket closed
//   "auth"        | a keepalive                          | "auth"
//                 | a refusal                            | socket closed
//                 | the server's proof, verified         | "up", every line sealed
//                 | anything else                        | socket closed (auth)
//
// No keepalive leaves in "auth": the server's next reader is sealed, and a
// plain line would close it.

import { Line } from "./codec.js"
import { LinkConfig } from "./config.js"
import { LinkError } from "./errors.js"
import { helloField, helloLine, parseHello, probeBlanks } from "./hello.js"
import type { Crypto } from "./crypto.js"
import { parseRefusal, refusalNotice } from "./refusal.js"
import { Report, reportLine } from "./report.js"
import { parseMax, sealedLimit } from "./limits.js"
import { Link, SocketState } from "./link.js"

// What a keyed client does that a plain one never does (keyed.ts provides
// it, through linkAuth()).
export interface KeyedSteps {
    // The server's first line (`text`, "" when not an extension line; the
    // epoch of its hello, if it is one): a valid challenge is answered
    // (the socket's transcript fields set, "auth" next); anything else
    // closes the socket, as a keyed client never goes on plain.
    answer(a: LinkAuth, link: ClientLink, c: ClientSocket, text: string, epoch: string | undefined, now: number): void
    // A line in "auth", after the answer: the server's proof (`!auth`)
    // that verifies brings the link up with every line sealed; anything
    // but a keepalive closes it.
    proof(a: LinkAuth, link: ClientLink, c: ClientSocket, l: Line, now: number): void
    // A line that starts with `!rekey`: taken only on an authenticated
    // link that is up and from a line that came encrypted and verified, as
    // a "rekey" event with the key it pushes (rekey.ts); else dropped, with
    // why not.
    rekey(a: LinkAuth, link: ClientLink, c: ClientSocket, text: string): void
}

// Authentication settings of a client Link (docs/security.md).
export interface LinkAuth {
    crypto: Crypto
    key: Buffer | undefined // undefined: no key; a challenge is answered plain
    encrypt: boolean // encrypt the messages this end sends
    // The keyed client's handshake and sealing (keyed.ts; linkAuth() fills
    // it in when there is a key). Passed in, not imported, so that a board
    // built without a key compiles none of it.
    steps: KeyedSteps | undefined
}

// With a key the link authenticates, and refuses a server that does not;
// without one it answers a challenge plain. Not a method: a board built
// without a key never calls it, so compiles none of it.
export function setAuth(link: ClientLink, auth: LinkAuth): void {
    if (auth.key !== undefined && auth.steps === undefined) throw new LinkError("ECONFIG", "a key needs the keyed steps: make the auth with linkAuth()")
    link.auth = auth
}

// A client's socket: the challenge it answers. Its fields are set by the
// first line when it is a challenge, before anything reads them; no class
// of its own, as it adds no code.
export interface ClientSocket extends SocketState {
    ns: string // the server's nonce
    nc: string // this client's nonce
    ms: string // the max= field of the server's challenge
    es: string // the server's epoch, from the challenge
}

export class ClientLink extends Link<ClientSocket> {
    readonly clientId: string
    auth: LinkAuth | undefined = undefined // set by setAuth()

    // `epoch`: drawn when this client's id sequence starts; `clientId`: the
    // id it sends.
    constructor(cfg: LinkConfig, epoch: string, clientId: string) {
        super(cfg, epoch)
        this.clientId = clientId
    }

    // Sends the id line and the devs-iot probe.
    open(now: number): void {
        const keyed = this.auth !== undefined && this.auth.key !== undefined
        const c = this.attach(now, "replaced by a new connection", keyed ? sealedLimit(this.cfg.maxLineBytes) : this.cfg.maxLineBytes + 2)
        if (c) c.out = this.clientId + "\n" + probeBlanks()
    }

    // Sends a report of this end (report.ts) to a devs-iot server whose link
    // is up; false, and nothing sent, otherwise: a v1 peer never sees one.
    // Its fields are the caller's to check (report.ts, reportProblem).
    sendReport(r: Report): boolean {
        const c = this.conn
        if (!c || !this.up || c.peer !== "devs-iot") return false
        c.out += reportLine(r)
        return true
    }

    protected newSocket(serial: number, now: number, frameLimit: number): ClientSocket {
        return new SocketState(serial, "first-line", now, frameLimit, false) as ClientSocket
    }

    protected handshakeLine(c: ClientSocket, l: Line, now: number): boolean {
        if (l.kind === "ext" && this.refusedBy(c, l.text, now)) return true
        if (c.phase === "first-line") return this.firstLine(c, l, now)
        if (c.phase === "auth") {
            const a = this.auth as LinkAuth
            ;(a.steps as KeyedSteps).proof(a, this, c, l, now)
            return true
        }
        // "asked": a server lets this client in with a keepalive
        // (serverlink.ts, openHelloed), the line before any other.
        if (l.kind !== "keepalive") {
            const why = "challenged for a key this client lacks; not let in"
            this.notice("refused", why)
            this.lose(now, why, true)
            return true
        }
        this.peerStarted(c, c.es)
        this.goUp(c)
        return false
    }

    // The server's first line on this socket.
    private firstLine(c: ClientSocket, l: Line, now: number): boolean {
        const text = l.kind === "ext" ? l.text : "" // "" is no hello
        const epoch = parseHello(text)
        const a = this.auth
        if (a && a.key !== undefined) {
            ;(a.steps as KeyedSteps).answer(a, this, c, text, epoch, now)
            return true
        }
        if (l.kind === "bad") {
            // Not a v1 line either: something else answers at this address
            // (an HTTP or SSH server, TLS, garbage). Logged as a refusal.
            this.notice("refused", "no devs-iot or micropython-iot server at this address: its first line: " + l.reason)
            this.lose(now, "not a devs-iot server", true)
            return true
        }
        if (epoch === undefined) {
            this.goUp(c)
            return false
        }
        c.peer = "devs-iot"
        this.learnMax(parseMax(text))
        c.out += helloLine(this.epoch, this.cfg.maxLineBytes)
        if (helloField(text, "auth") !== "") {
            // Challenged without a key: up only if the server lets us in.
            c.es = epoch
            c.phase = "asked"
            return true
        }
        this.peerStarted(c, epoch)
        this.goUp(c)
        return true
    }

    // A client waits for a complete line it can read.
    protected handshakeTooLong(c: ClientSocket): void {}

    protected towardServer(): boolean {
        return true
    }

    // Silence before the first line is the outage rule's. Bytes without a
    // whole first line (one endless line, a trickle) must not hold the
    // socket for ever: twice the timeout from the first byte.
    protected handshakeTimeout(c: ClientSocket, now: number): boolean {
        const t = this.handshakeDeadline(c)
        if (t < 0 || now < t) return false
        this.notice("refused", "no devs-iot or micropython-iot server at this address: no whole first line within " + 2 * this.cfg.timeout + " ms of its first byte")
        this.lose(now, "not a devs-iot server", true)
        return true
    }

    protected handshakeDeadline(c: ClientSocket): number {
        return c.phase === "first-line" && c.firstByteAt >= 0 ? c.firstByteAt + 2 * this.cfg.timeout : -1
    }

    // A refusal, or a key push ("!rekey", rekey.ts): the keyed steps judge
    // it; a client without a key drops it.
    protected handleExt(c: ClientSocket, text: string, line: Buffer, now: number): boolean {
        if (this.refusedBy(c, text, now)) return true
        if (text.indexOf("!rekey") !== 0) return false
        const a = this.auth
        if (a && a.steps) a.steps.rekey(a, this, c, text)
        else this.dropKeyLine(undefined)
        return true
    }

    // A client given a refusal (refusal.ts) closes, and its driver retries.
    private refusedBy(c: ClientSocket, text: string, now: number): boolean {
        const r = parseRefusal(text)
        if (r === undefined) return false
        const authenticated = !!c.session
        this.notice("refused", refusalNotice(r, authenticated))
        this.lose(now, "refused by the server: " + r, true)
        return true
    }
}
