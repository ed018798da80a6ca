// A fault-injecting TCP proxy between clients and a server, on loopback.
// Faults: stall (forward nothing, keep sockets open), refuse (new connections
// are closed at once), cut (close every pair with FIN, or reset with RST).
import { connect, createServer, type Server, type Socket } from "node:net"

interface Pair {
    client: Socket
    server: Socket
}

export class FaultProxy {
    port = 0
    accepted = 0
    private net: Server
    private pairs = new Set<Pair>()
    private stalled = false
    private refusing = false
    private held: Array<() => void> = []

    constructor(readonly targetPort: number, readonly targetHost = "127.0.0.1") {
        this.net = createServer((c) => this.accept(c))
    }

    async listen(port = 0): Promise<number> {
        await new Promise<void>((r) => this.net.listen(port, "127.0.0.1", r))
        const a = this.net.address()
        this.port = typeof a === "object" && a ? a.port : 0
        return this.port
    }

    // Forward nothing (both ways) until stall(false); sockets stay open.
    stall(on: boolean): void {
        this.stalled = on
        if (!on) for (const f of this.held.splice(0)) f()
    }

    // Close new connections at once until refuse(false).
    refuse(on: boolean): void {
        this.refusing = on
    }

    // Close every current pair: "fin" ends both sides, "rst" resets them.
    cut(kind: "fin" | "rst"): void {
        for (const p of this.pairs) {
            if (kind === "rst") {
                p.client.resetAndDestroy()
                p.server.resetAndDestroy()
            } else {
                p.client.end()
                p.server.end()
            }
        }
        this.pairs.clear()
        this.held = []
    }

    async close(): Promise<void> {
        this.cut("rst")
        await new Promise<void>((r) => this.net.close(() => r()))
    }

    private accept(client: Socket): void {
        this.accepted++
        client.on("error", () => {})
        if (this.refusing) return void client.resetAndDestroy()
        const server = connect({ port: this.targetPort, host: this.targetHost })
        server.on("error", () => {})
        const pair = { client, server }
        this.pairs.add(pair)
        const pipe = (from: Socket, to: Socket) =>
            from.on("data", (b: Buffer) => {
                if (this.stalled) this.held.push(() => to.writable && to.write(b))
                else if (to.writable) to.write(b)
            })
        pipe(client, server)
        pipe(server, client)
        const drop = () => {
            this.pairs.delete(pair)
            client.destroy()
            server.destroy()
        }
        client.on("close", drop)
        server.on("close", drop)
    }
}
