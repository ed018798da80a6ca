// A client facing a hostile or broken server: whatever answers at its
// address may flood it, never read, or not speak the protocol at all. The
// client stays bounded, cuts and backs off, and other links in the same
// process go on. Every wait is on an event with a deadline.
import assert from "node:assert/strict"
import { createServer, type Server as NetServer, type Socket } from "node:net"
import { Client, Server } from "../../src/server/index.js"
import { closeAll, onCleanup, sendAndCheck, within } from "../kit/util.js"

const T = 1000

afterEach(closeAll)

interface Rogue {
    port: number
    accepts: number
    accepted(n: number, ms: number): Promise<void> // resolves once `n` sockets were accepted
}

// A listener that does `behave` with each socket it accepts.
async function rogue(behave: (s: Socket) => void): Promise<Rogue> {
    const socks: Socket[] = []
    const waiters: Array<() => void> = []
    const r: Rogue = {
        port: 0,
        accepts: 0,
        accepted: (n, ms) =>
            within(
                new Promise<void>((resolve) => {
                    const check = () => r.accepts >= n && resolve()
                    waiters.push(check)
                    check()
                }),
                ms,
                () => `${n} connects (got ${r.accepts})`
            ),
    }
    const srv: NetServer = createServer((s) => {
        socks.push(s)
        s.on("error", () => {})
        r.accepts++
        behave(s)
        for (const w of [...waiters]) w()
    })
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve))
    r.port = (srv.address() as { port: number }).port
    onCleanup(() => {
        for (const s of socks) s.destroy()
        return new Promise<void>((resolve) => srv.close(() => resolve()))
    })
    return r
}

// Writes `chunk` as fast as the socket takes it, for as long as it is open;
// reads nothing (no "data" listener: the client's writes pile up).
function flood(s: Socket, first: string, chunk: Buffer): void {
    s.write(first)
    const more = () => {
        while (!s.destroyed && s.write(chunk)) {}
    }
    s.on("drain", more)
    more()
}

function repeat(line: string, bytes: number): Buffer {
    let s = ""
    while (s.length < bytes) s += line
    return Buffer.from(s)
}

function startClient(port: number, id: string): Client {
    const c = new Client({ id, port, timeout: T, backoffFirst: 50, backoffCap: 400 })
    onCleanup(() => c.close())
    return c.start()
}

describe("a client facing a hostile server", function () {
    this.timeout(60000)

    for (const [what, line] of [
        ["duplicates of one qos message", "05hello\n"],
        ["non-qos duplicates", "80hi\n"],
        ["ACKs for ids never sent", "7f\n"],
        ["keepalives only", "\n"],
    ] as const) {
        it(`a server that floods ${what} and never reads is cut and retried; another link in the process goes on`, async function () {
            const r = await rogue((s) => flood(s, "!hello epoch=00000001\n", repeat(line, 65536)))
            const victim = startClient(r.port, "victim")
            const pending = victim.write("kept") // waits across the cuts
            let settled = false
            void pending.then(
                () => (settled = true),
                () => (settled = true)
            )
            // An honest pair in the same process, while the flood goes on.
            const server = new Server({ port: 0, host: "127.0.0.1", timeout: T })
            onCleanup(() => server.close())
            await server.listen()
            const honest = startClient(server.port, "honest")
            await within(honest.connected(), 10000, "the honest link up")
            await sendAndCheck(honest, await server.clientConn("honest"), ["a", "b", "c"])
            // Throttled by its read budget, then dropped (cut, or silent while
            // throttled) and connected again: not held for ever.
            await r.accepted(2, 20000)
            assert.ok(victim.bounded.throttled >= 1, "throttled by its read budget")
            assert.equal(settled, false, "the pending write still waits")
            assert.ok(process.memoryUsage().heapUsed < 400e6, "heap bounded")
        })
    }
})
