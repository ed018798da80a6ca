// The server's end of a link (link.ts holds what both ends share): the
// probe, the v1 client's warm-up, the devs-iot hello, sockets the server's
// authentication (authserver.ts) hands over, refusals, take-over, and the
// lines only a server takes (reports, the key push's confirmation). A board
// never imports this file, so none of it is in its image.
//
// The server's phases (docs/protocol.md, "Handshake"), one socket, from
// after the id line:
//
//   phase     | on                                         | next
//   "probe"   | a blank line, fewer than PROBE_BLANKS so far | "probe" (nothing sent)
//             | the PROBE_BLANKS-th blank line             | "hello", hello sent
//             | any other line, or a line cut as too long  | "warmup" (v1), the line handled as data
//             | its keepalive falls due (timeout/4)        | "warmup" (v1), keepalive sent
//   "warmup"  | `warmup` ms after the client's first byte  | "up"
//             | a message, once this end has written       | "up", the message handled
//   "hello"   | the client's hello                         | "up"
//             | a keepalive                                | "hello"
//             | any other line, or one cut as too long     | "up" with v1 rules (no-hello)
//             | no hello within `timeout`                  | socket closed (no-hello)
//
// A keyed id's sockets (and a plain hello answering a keyed id's
// challenge) come already past the handshake: openAuthenticated() and
// openHelloed() start them "up".

import { KEEPALIVE_LINE, Line } from "./codec.js"
import { LinkConfig } from "./config.js"
import { helloField, helloLine, parseHello, ProbeCount } from "./hello.js"
import type { Session } from "./seal.js"
import { refusalLine } from "./refusal.js"
import { isReport, parseReport } from "./report.js"
import { parseMax, sealedLimit } from "./limits.js"
import { Link, SocketState } from "./link.js"

// A server's socket: its probe and hello.
export class ServerSocket extends SocketState {
    probe = new ProbeCount() // blank lines counted in "probe"
    helloAt = -1 // when the hello went out

    constructor(serial: number, now: number, frameLimit: number) {
        // The server opens a socket once it has read the id, which is a line.
        super(serial, "probe", now, frameLimit, true)
    }
}

export class ServerLink extends Link<ServerSocket> {
    // `epoch`: drawn when this id's Connection starts its id sequence.
    constructor(cfg: LinkConfig, epoch: string) {
        super(cfg, epoch)
    }

    // A socket whose id line was read: the probe starts.
    open(now: number): void {
        this.attach(now, "replaced by a new connection", this.cfg.maxLineBytes + 2)
    }

    // A socket whose client proved its key (authserver.ts); the server's
    // proof has been written. Every line is sealed from here on.
    // `mustEncrypt`: a message that comes only MACed closes the connection.
    // `peerMax`: the limit in the client's answer (-1: none).
    openAuthenticated(now: number, session: Session, peerEpoch: string, mustEncrypt?: boolean, peerMax?: number): void {
        const c = this.attach(now, "replaced by an authenticated connection", sealedLimit(this.cfg.maxLineBytes))
        if (c === undefined) return
        c.session = session
        session.mustEncrypt = mustEncrypt === true
        c.peer = "devs-iot"
        this.learnMax(peerMax === undefined ? -1 : peerMax)
        this.peerStarted(c, peerEpoch)
        this.goUp(c)
    }

    // A devs-iot client without a key answered a keyed id's challenge with
    // a plain hello, and the id may stay plain.
    openHelloed(now: number, peerEpoch: string, peerMax?: number): void {
        const c = this.attach(now, "replaced by a new connection", this.cfg.maxLineBytes + 2)
        if (c === undefined) return
        c.peer = "devs-iot"
        this.learnMax(peerMax === undefined ? -1 : peerMax)
        this.peerStarted(c, peerEpoch)
        this.goUp(c)
        // The client waits for a line after its plain answer: it was let in.
        c.out = KEEPALIVE_LINE
    }

    // Ends the current connection because the client is refused now (its id
    // or key was revoked). Returns the bytes to send before closing: the
    // refusal for a devs-iot client (sealed on a sealed link), nothing for a
    // v1 one. The driver writes them and closes the socket.
    refuse(now: number, reason: string): Buffer | undefined {
        const c = this.conn
        if (c === undefined) return undefined
        let b: Buffer | undefined = undefined
        if (c.peer === "devs-iot") {
            const line = refusalLine(reason)
            b = c.session !== undefined ? c.session.seal(Buffer.from(line.slice(0, line.length - 1))) : Buffer.from(line)
        }
        this.lose(now, "refused: " + reason, false)
        return b
    }

    // Sends `text` (a key push, rekey.ts) as one encrypted sealed line,
    // whatever `encrypt` says; false, and nothing sent, unless the link is
    // up on an authenticated socket.
    sendSecret(text: string): boolean {
        const c = this.conn
        if (c === undefined || c.session === undefined || !this.up) return false
        // Sealed now, so sent before every line sealed after it.
        c.pre += c.session.seal(Buffer.from(text), true).toString("utf-8")
        return true
    }

    // Fault 9: a newcomer with this id takes over when no socket is open or
    // the open one has been silent for more than timeout/2; otherwise it is
    // refused as a duplicate, so a stranger cannot steal a live link by
    // sending an id. For a keyed id, a newcomer that authenticates also takes
    // over (the server decides that after authserver.ts).
    mayTakeOver(now: number): boolean {
        const c = this.conn
        return c === undefined || now - c.lastRecv > this.cfg.timeout / 2
    }

    protected newSocket(serial: number, now: number, frameLimit: number): ServerSocket {
        return new ServerSocket(serial, now, frameLimit)
    }

    protected handshakeLine(c: ServerSocket, l: Line, now: number): boolean {
        if (c.phase === "probe") {
            if (l.kind === "keepalive") {
                if (c.probe.blank()) {
                    c.peer = "devs-iot"
                    c.phase = "hello"
                    c.helloAt = now
                    c.out += helloLine(this.epoch, this.cfg.maxLineBytes)
                }
                return true
            }
            this.endProbe(c)
        } else if (c.phase === "hello") {
            const epoch = l.kind === "ext" ? parseHello(l.text) : undefined
            if (epoch !== undefined) {
                this.learnMax(l.kind === "ext" ? parseMax(l.text) : -1)
                this.peerStarted(c, epoch)
                this.goUp(c)
                return true
            }
            if (l.kind !== "keepalive") this.noHello(c)
        } else if (c.phase === "warmup" && l.kind === "message" && c.wrote) {
            // A v1 client sends messages only once it has read a line from
            // this end: it is awake, and the warm-up (kept for its sake) is
            // over. Up now, its application reads the line at once.
            this.goUp(c)
        }
        return false
    }

    protected towardServer(): boolean {
        return false
    }

    // A line cut as too long is a line: not blank, not a hello.
    protected handshakeTooLong(c: ServerSocket): void {
        if (c.phase === "probe") this.endProbe(c)
        else if (c.phase === "hello") this.noHello(c)
    }

    protected handshakeTimeout(c: ServerSocket, now: number): boolean {
        if (c.phase === "hello" && now >= c.helloAt + this.cfg.timeout) {
            this.notice("no-hello", "client sent the devs-iot probe but no hello")
            this.lose(now, "no hello from a devs-iot client", true)
            return true
        }
        if (c.phase === "warmup" && c.firstByteAt >= 0 && now >= c.firstByteAt + this.cfg.warmup) this.goUp(c)
        // No probe by the time this end's keepalive is due: a v1 client (its
        // keepalive goes out next, in the data phase's rule).
        if (c.phase === "probe" && c.out.length === 0 && now >= c.lastSend + this.keepaliveEvery()) this.endProbe(c)
        return false
    }

    protected handshakeDeadline(c: ServerSocket): number {
        if (c.phase === "warmup" && c.firstByteAt >= 0) return c.firstByteAt + this.cfg.warmup
        if (c.phase === "hello") return c.helloAt + this.cfg.timeout
        return -1
    }

    // A key push's confirmation ("!rekeyed", rekey.ts), taken only on an
    // authenticated link; a devs-iot client's report (report.ts).
    protected handleExt(c: ServerSocket, text: string, line: Buffer, now: number): boolean {
        if (text.indexOf("!rekey") === 0) {
            if (c.session !== undefined && c.phase === "up" && text.indexOf("!rekeyed ") === 0) this.events.push({ type: "rekeyed", kcv: helloField(text, "kcv") })
            else this.dropKeyLine(undefined)
            return true
        }
        if (c.peer !== "devs-iot" || !isReport(text)) return false
        const r = parseReport(text)
        if (typeof r === "string") this.bad(r, line)
        else this.events.push({ type: "report", report: r })
        return true
    }

    // Not what a devs-iot client sends after a hello: fall back to v1 rules.
    private noHello(c: ServerSocket): void {
        c.peer = "v1"
        this.notice("no-hello", "expected a hello, got another line: using v1 rules")
        this.goUp(c)
    }

    private endProbe(c: ServerSocket): void {
        c.peer = "v1"
        c.phase = "warmup"
    }
}
