// The server's persistent link to one client id. It outlives sockets: a
// reconnecting client gets the same Connection, with its queued writes,
// un-ACKed messages and set of seen ids.
import type { Socket } from "node:net"
import { randomBytes } from "node:crypto"
import { Link, type LinkConfig, type Session } from "../shared/index.js"
import { clock, Endpoint } from "./endpoint.js"
import type { Logger } from "./log.js"

export class Connection extends Endpoint {
    readonly id: string
    private remote = ""

    constructor(id: string, cfg: LinkConfig, log: Logger) {
        // A new epoch per Connection: its id sequence starts here.
        super(new Link("server", cfg, randomBytes(4).toString("hex"), ""), log.child({ client: id }))
        this.id = id
    }

    // The address of the current (or last) socket.
    get address(): string {
        return this.remote
    }

    // The epoch of this Connection's id sequence (sent in the hello).
    get epoch(): string {
        return this.link.epoch
    }

    // Fault 9: may a newcomer with this id take this link over?
    mayTakeOver(): boolean {
        return this.link.mayTakeOver(clock())
    }

    hasSocket(): boolean {
        return this.socket !== undefined
    }

    /** @internal The server hands over a socket whose id line it has read. */
    adopt(socket: Socket, rest: Buffer[]): void {
        if (this.socket) this.dropSocket("taken over by a new connection")
        this.remote = `${socket.remoteAddress}:${socket.remotePort}`
        this.attach(socket, rest)
    }

    /** @internal A socket whose client proved its key (the server's proof is written). */
    adoptAuthenticated(socket: Socket, session: Session, peerEpoch: string, rest: Buffer[], peerMax = -1): void {
        if (this.socket) this.dropSocket("taken over by an authenticated connection")
        this.remote = `${socket.remoteAddress}:${socket.remotePort}`
        this.attach(socket, rest, (now) => this.link.openAuthenticated(now, session, peerEpoch, peerMax))
    }

    /** @internal A devs-iot client without a key, on a keyed id allowed plain. */
    adoptHelloed(socket: Socket, peerEpoch: string, rest: Buffer[], peerMax = -1): void {
        if (this.socket) this.dropSocket("taken over by a new connection")
        this.remote = `${socket.remoteAddress}:${socket.remotePort}`
        this.attach(socket, rest, (now) => this.link.openHelloed(now, peerEpoch, peerMax))
    }

    /** @internal */
    shutdown(): void {
        this.releaseRead()
        // Detach first so the socket ends with FIN, not a reset.
        const s = this.socket
        this.socket = undefined
        this.closeLink()
        if (s) {
            s.end()
            setTimeout(() => s.destroy(), 500).unref()
        }
    }

    protected socketGone(): void {}

    protected override onNotice(code: string, detail: string): void {
        super.onNotice(code, detail)
        if (code === "bad-line" || code === "too-long" || code === "no-hello")
            this.emit("warning", { code, id: this.id, detail })
        else if (code === "auth") this.emit("warning", { code: "auth-failed", id: this.id, address: this.remote, detail: `${detail}: connection closed` })
    }
}
