// An on-path attacker between clients and a server, on loopback: it forwards
// whole lines and lets a test rewrite, hold, replay or inject them in either
// direction ("up": client to server; "down": server to client).
import { connect, createServer, type Server, type Socket } from "node:net"

export type Dir = "up" | "down"
// Returns the lines to forward in place of `line` (each without "\n").
export type Rewrite = (line: Buffer, dir: Dir) => Buffer[]

interface Pair {
    client: Socket
    server: Socket
}

export class Mitm {
    port = 0
    rewrite: Rewrite = (l) => [l]
    private net: Server
    private pairs: Pair[] = []

    constructor(private target: number) {
        this.net = createServer((c) => this.accept(c))
    }

    async listen(port = 0): Promise<void> {
        await new Promise<void>((r) => this.net.listen(port, "127.0.0.1", r))
        const a = this.net.address()
        this.port = typeof a === "object" && a ? a.port : 0
    }

    // Writes bytes into the newest connection, as if its sender had.
    inject(dir: Dir, bytes: string | Buffer): void {
        const p = this.pairs[this.pairs.length - 1]
        if (!p) throw new Error("mitm: no connection to inject into")
        ;(dir === "up" ? p.server : p.client).write(bytes)
    }

    connections(): number {
        return this.pairs.length
    }

    async close(): Promise<void> {
        for (const p of this.pairs) {
            p.client.destroy()
            p.server.destroy()
        }
        await new Promise<void>((r) => this.net.close(() => r()))
    }

    private accept(client: Socket): void {
        const server = connect({ port: this.target, host: "127.0.0.1" })
        const pair = { client, server }
        this.pairs.push(pair)
        client.on("error", () => {})
        server.on("error", () => {})
        client.on("close", () => server.destroy())
        server.on("close", () => client.destroy())
        this.pipe(client, server, "up")
        this.pipe(server, client, "down")
    }

    private pipe(from: Socket, to: Socket, dir: Dir): void {
        let partial = Buffer.alloc(0)
        from.on("data", (b: Buffer) => {
            let data = Buffer.concat([partial, b])
            let nl: number
            const out: Buffer[] = []
            while ((nl = data.indexOf(10)) >= 0) {
                for (const l of this.rewrite(data.subarray(0, nl), dir)) out.push(l, Buffer.from("\n"))
                data = data.subarray(nl + 1)
            }
            partial = Buffer.from(data)
            if (out.length > 0 && !to.destroyed) to.write(Buffer.concat(out))
        })
    }
}

// A sealed message line (not a keepalive or an ACK): "!m" + 8 + 32 + "hh" + payload, or "!e...".
export function isSealedMessage(line: Buffer): boolean {
    return line.length >= 45 && line[0] === 33 && (line[1] === 109 || line[1] === 101)
}
