// The server's persistent link to one client id. It outlives sockets: a
// reconnecting client gets the same Connection, with its queued writes,
// un-ACKed messages and set of seen ids.
import type { Socket } from "node:net"
import { randomBytes } from "node:crypto"
import { isSealed, ServerLink, useStore, type AuthOutcome, type LinkConfig, type Report } from "../shared/index.js"
import type { Warning } from "./warning.js"
import { clock } from "./clock.js"
import { LinkDriver, type Claim, type PeerBounds } from "./driver.js"
import type { Logger } from "./log.js"
import type { StateStore } from "./state.js"

// How a socket reaches its Connection: with its id line read and nothing
// more (the Link's own probe follows: v1 or devs-iot), or through the
// server's handshake for a keyed id (authserver.ts), which found a hello
// without a key or a proved key.
type Opening = { kind: "id"; rest: Buffer[] } | Extract<AuthOutcome, { kind: "hello" | "auth" }>

// "status"; a devs-iot client's periodic "report" (report.ts); "rekeyed": the
// client confirmed a pushed key (docs/security.md, "Key push over the link");
// the warnings about this id's sockets (the Server passes them on as its own
// "warning").
export declare interface Connection {
    on(event: "status", listener: (up: boolean, reason?: string) => void): this
    once(event: "status", listener: (up: boolean, reason?: string) => void): this
    off(event: "status", listener: (up: boolean, reason?: string) => void): this
    on(event: "report", listener: (r: Report) => void): this
    once(event: "report", listener: (r: Report) => void): this
    off(event: "report", listener: (r: Report) => void): this
    on(event: "rekeyed", listener: (kcv: string) => void): this
    once(event: "rekeyed", listener: (kcv: string) => void): this
    off(event: "rekeyed", listener: (kcv: string) => void): this
    on(event: "warning", listener: (w: Warning) => void): this
    once(event: "warning", listener: (w: Warning) => void): this
    off(event: "warning", listener: (w: Warning) => void): this
}

export class Connection extends LinkDriver<ServerLink> {
    readonly id: string
    /** @internal */
    everAuthenticated = false // a keyed client proved its key on this id once
    private remote = ""

    constructor(id: string, cfg: LinkConfig, log: Logger, bounds?: PeerBounds, logGate?: (kind: string) => boolean, state?: StateStore, epoch?: string) {
        // A new epoch per Connection: its id sequence starts here, unless
        // the delivery state holds one from an earlier life of the server,
        // or a relay continues another server's (`epoch`).
        // The child logger is made when first used: most idle ids never log.
        const saved = state?.load(id)
        super(new ServerLink(cfg, saved?.link.epoch ?? epoch ?? randomBytes(4).toString("hex")), log, id)
        if (state) {
            this.state = state
            useStore(this.link, state.forId(id), saved)
        }
        this.id = id
        this.setBounds(bounds)
        this.logGate = logGate
    }

    // The address of the current (or last) socket.
    get address(): string {
        return this.remote
    }

    // The epoch of this Connection's id sequence (sent in the hello).
    get epoch(): string {
        return this.link.epoch
    }

    // The epoch of the peer's current life (its hello), undefined before
    // one came or for a peer without one (v1).
    get peerEpoch(): string | undefined {
        return this.link.peerEpoch
    }

    // Fault 9: may a newcomer with this id take this link over?
    /** @internal */
    mayTakeOver(): boolean {
        return this.link.mayTakeOver(clock())
    }

    /** @internal */
    hasSocket(): boolean {
        return this.socket !== undefined
    }

    /** @internal The server hands over a socket (see Opening). */
    adopt(socket: Socket, o: Opening): void {
        if (this.socket) this.dropSocket(o.kind === "auth" ? "taken over by an authenticated connection" : "taken over by a new connection")
        if (o.kind === "auth") this.everAuthenticated = true
        this.remote = `${socket.remoteAddress}:${socket.remotePort}`
        if (o.kind === "id") return this.attach(socket, o.rest)
        this.attach(socket, o.rest, (now) => (o.kind === "auth" ? this.link.openAuthenticated(now, o.session, o.peerEpoch, o.mustEncrypt, o.peerMax) : this.link.openHelloed(now, o.peerEpoch, o.peerMax)))
    }

    /** @internal The server's own lines on this link (ota/admin.ts): taken
     * ahead of the application's readers (driver.ts, Claim). */
    setClaim(claim: Claim | undefined): void {
        this.claim = claim
        this.pump()
    }

    /** @internal Pushes the id's next key (rekey.ts) on this authenticated link. */
    pushKey(text: string): boolean {
        const sent = this.link.sendSecret(text)
        if (sent) this.pump()
        return sent
    }

    /** @internal Ends the current socket: this client is refused now (its id
     * or key was revoked). A devs-iot client is told why; the link lives on. */
    revoke(reason: string): void {
        const s = this.socket
        if (!s) return
        const b = this.link.refuse(clock(), reason)
        this.socket = undefined
        if (b) s.end(b)
        else s.end()
        setTimeout(() => s.destroy(), 500).unref()
        this.pump()
    }

    // Closes the current socket (an operator's action); the link stays and
    // the client reconnects. False when no socket was open.
    disconnect(reason = "disconnected by the operator"): boolean {
        if (!this.socket) return false
        this.dropSocket(reason)
        return true
    }

    // True while the link is up with the id's key (every line sealed).
    get authenticated(): boolean {
        return isSealed(this.link)
    }

    /** @internal */
    shutdown(): void {
        this.releaseRead()
        // Detach first so the socket ends with FIN, not a reset.
        const s = this.socket
        this.socket = undefined
        this.closeLink()
        if (s && this.commitOutput(s)) {
            s.end()
            setTimeout(() => s.destroy(), 500).unref()
        }
    }

    protected socketGone(): void {}

    protected override onBoundCut(code: "slow-reader" | "flood", detail: string): void {
        this.emit("warning", { code, id: this.id, address: this.remote, detail })
    }

    protected override onNotice(code: string, detail: string): void {
        super.onNotice(code, detail)
        if (code === "bad-line" || code === "too-long" || code === "no-hello")
            this.emit("warning", { code, id: this.id, detail })
        else if (code === "auth") this.emit("warning", { code: "auth-failed", id: this.id, address: this.remote, detail: `${detail}: connection closed` })
    }
}
