// A fault-injecting TCP proxy between clients and a server, on loopback.
// Socket faults: stall (forward nothing, keep sockets open), refuse (close new
// connections at once), cut (close every pair with FIN, or reset with RST).
// Line faults, which know the wire format: cut in the middle of the next
// message line, drop the next ACK line. Stream faults: split every write into
// 1-byte writes, add latency.
import { connect, createServer, type Server, type Socket } from "node:net"

export type Direction = "up" | "down" // up: client to server; down: server to client
export type CutKind = "fin" | "rst"

interface Pipe {
    dir: Direction
    to: Socket
    started: boolean // a whole line went through (the first one up is the id)
    midLine: boolean // the last byte forwarded was not "\n"
    line: Buffer[] // the current line, held while a line fault is armed
    out: Array<{ due: number; b: Buffer }> // bytes on their way, in order (TCP never reorders)
    timer: NodeJS.Timeout | undefined
}

interface Pair {
    client: Socket
    server: Socket
    up: Pipe
    down: Pipe
}

const NL = 10

function isHex(b: number): boolean {
    return (b >= 48 && b <= 57) || (b >= 97 && b <= 102) || (b >= 65 && b <= 70)
}

// "hh\n": an ACK (or a message whose payload is empty, which write() refuses).
function isAck(line: Buffer): boolean {
    return line.length === 3 && isHex(line[0]!) && isHex(line[1]!)
}

// "hh<payload>\n", not an extension line ("!..."), not a keepalive.
function isMessage(line: Buffer): boolean {
    return line.length > 3 && isHex(line[0]!) && isHex(line[1]!)
}

export class FaultProxy {
    port = 0
    accepted = 0
    private net: Server
    private pairs = new Set<Pair>()
    private stalled = false
    private refusing = false
    private split = false
    private latency = 0
    private dropAcks = { up: 0, down: 0 } // ACK lines still to drop
    private cutNext: { dir: Direction; kind: CutKind } | undefined
    private cutWaiters: Array<() => void> = []
    private dropWaiters: Array<() => void> = []

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
        if (!on) for (const p of this.pairs) (this.flush(p.up), this.flush(p.down))
    }

    // Close new connections at once until refuse(false).
    refuse(on: boolean): void {
        this.refusing = on
    }

    // Close every current pair: "fin" ends both sides, "rst" resets them.
    cut(kind: CutKind): void {
        for (const p of this.pairs) this.closePair(p, kind)
        this.pairs.clear()
    }

    // Forward the first half of the next message line going `dir`, then cut.
    // Resolves once the cut happened.
    cutMidLine(dir: Direction, kind: CutKind = "fin"): Promise<void> {
        this.cutNext = { dir, kind }
        return new Promise((r) => this.cutWaiters.push(r))
    }

    // Drop the next ACK line going `dir` (ACK loss). Resolves once it was
    // dropped, or when clear() gives up on it.
    dropAck(dir: Direction): Promise<void> {
        this.dropAcks[dir]++
        return new Promise((r) => this.dropWaiters.push(r))
    }

    // Every write goes on as 1-byte writes until splitBytes(false).
    splitBytes(on: boolean): void {
        this.split = on
        for (const p of this.pairs) {
            p.client.setNoDelay(on)
            p.server.setNoDelay(on)
        }
    }

    // Each chunk is forwarded `ms` later (order kept); 0 turns it off.
    delay(ms: number): void {
        this.latency = ms
    }

    // All faults off; current pairs stay.
    clear(): void {
        this.stall(false)
        this.refuse(false)
        this.splitBytes(false)
        this.delay(0)
        this.dropAcks = { up: 0, down: 0 }
        this.cutNext = undefined
        for (const r of this.cutWaiters.splice(0)) r()
        for (const r of this.dropWaiters.splice(0)) r()
    }

    async close(): Promise<void> {
        this.clear()
        this.cut("rst")
        await new Promise<void>((r) => this.net.close(() => r()))
    }

    private accept(client: Socket): void {
        this.accepted++
        client.on("error", () => {})
        if (this.refusing) return void client.resetAndDestroy()
        const server = connect({ port: this.targetPort, host: this.targetHost })
        server.on("error", () => {})
        const pipe = (dir: Direction, to: Socket): Pipe => ({ dir, to, started: false, midLine: false, line: [], out: [], timer: undefined })
        const pair: Pair = { client, server, up: pipe("up", server), down: pipe("down", client) }
        this.pairs.add(pair)
        if (this.split) {
            client.setNoDelay(true)
            server.setNoDelay(true)
        }
        client.on("data", (b: Buffer) => this.take(pair, pair.up, b))
        server.on("data", (b: Buffer) => this.take(pair, pair.down, b))
        const drop = () => {
            this.pairs.delete(pair)
            this.dropQueued(pair)
            client.destroy()
            server.destroy()
        }
        client.on("close", drop)
        server.on("close", drop)
    }

    private dropQueued(p: Pair): void {
        for (const pipe of [p.up, p.down]) {
            pipe.out = []
            if (pipe.timer) clearTimeout(pipe.timer)
        }
    }

    private closePair(p: Pair, kind: CutKind): void {
        this.dropQueued(p)
        if (kind === "rst") {
            p.client.resetAndDestroy()
            p.server.resetAndDestroy()
        } else {
            p.client.end()
            p.server.end()
        }
    }

    // A line fault applies to this pipe's next whole line (never to the id).
    private armed(pipe: Pipe): boolean {
        if (pipe.dir === "up" && !pipe.started) return false
        return this.dropAcks[pipe.dir] > 0 || this.cutNext?.dir === pipe.dir
    }

    // Bytes from one side: through the line faults, then on to the other side.
    private take(pair: Pair, pipe: Pipe, b: Buffer): void {
        let pos = 0
        while (pos < b.length && this.pairs.has(pair)) {
            const nl = b.indexOf(NL, pos)
            if (pipe.line.length === 0 && (pipe.midLine || !this.armed(pipe))) {
                // Not judging: up to the end of this line, or all when no fault is armed.
                const end = nl < 0 ? b.length : this.armed(pipe) ? nl + 1 : b.length
                this.forward(pipe, b.subarray(pos, end))
                if (nl >= 0) pipe.started = true
                pos = end
                continue
            }
            if (nl < 0) return void pipe.line.push(b.subarray(pos))
            pipe.line.push(b.subarray(pos, nl + 1))
            const line = Buffer.concat(pipe.line)
            pipe.line = []
            pos = nl + 1
            this.judge(pair, pipe, line)
        }
    }

    private judge(pair: Pair, pipe: Pipe, line: Buffer): void {
        pipe.started = true
        if (this.dropAcks[pipe.dir] > 0 && isAck(line)) {
            this.dropAcks[pipe.dir]--
            this.dropWaiters.shift()?.()
            return
        }
        const cut = this.cutNext
        if (cut && cut.dir === pipe.dir && isMessage(line)) {
            this.cutNext = undefined
            this.forward(pipe, line.subarray(0, Math.max(3, line.length >> 1)))
            this.pairs.delete(pair) // nothing more goes through this pair
            const go = () => {
                this.closePair(pair, cut.kind)
                for (const r of this.cutWaiters.splice(0)) r()
            }
            // Let the half line reach the socket first.
            if (this.latency > 0) setTimeout(go, this.latency + 5)
            else setImmediate(go)
            return
        }
        this.forward(pipe, line)
    }

    private forward(pipe: Pipe, b: Buffer): void {
        if (b.length === 0) return
        pipe.midLine = b[b.length - 1] !== NL
        pipe.out.push({ due: Date.now() + this.latency, b })
        this.flush(pipe)
    }

    // Sends what is due, in order; stalled, sends nothing.
    private flush(pipe: Pipe): void {
        if (pipe.timer) clearTimeout(pipe.timer)
        pipe.timer = undefined
        const to = pipe.to
        while (!this.stalled && pipe.out.length > 0) {
            const next = pipe.out[0]!
            const wait = next.due - Date.now()
            if (wait > 0) {
                pipe.timer = setTimeout(() => this.flush(pipe), wait)
                return
            }
            pipe.out.shift()
            if (!to.writable) continue
            if (!this.split) to.write(next.b)
            else for (let i = 0; i < next.b.length; i++) to.write(next.b.subarray(i, i + 1))
        }
    }
}
