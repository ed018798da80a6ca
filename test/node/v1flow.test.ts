// A v1 peer under load: the original client's pipelined qos writes, and a
// server burst toward its 20-line receive queue. The peer (test/kit/v1peer.ts)
// ACKs on receipt, keeps 20 lines unread (one more is lost and it
// reconnects) and resends after `timeout`: exactly-once must hold without a
// single resend on the wire.
import assert from "node:assert/strict"
import type { Connection } from "../../src/server/index.js"
import { Server } from "../../src/server/index.js"
import { V1Client } from "../kit/v1peer.js"
import { cleanup, closeAll, within } from "../kit/util.js"

const T = 2000 // the default timeout: a resend would come only after it
const BOUND = 10000 // for anything that takes well under a second

const range = (n: number, p: string) => Array.from({ length: n }, (_, i) => `${p}${i}`)

// Writes `lines` from the v1 peer, `inflight` at a time (qos, no wait).
function pipelined(v: V1Client, lines: string[], inflight: number): Promise<void> {
    return new Promise((resolve, reject) => {
        let next = 0
        let done = 0
        const launch = () => {
            while (next < lines.length && next - done < inflight)
                v.write(lines[next++]!, { wait: false }).then(() => (++done === lines.length ? resolve() : launch()), reject)
        }
        launch()
    })
}

// The application of a Connection: reads every line from the moment the link is up.
function reader(conn: Connection): string[] {
    const got: string[] = []
    void (async () => {
        try {
            for await (const l of conn) got.push(l)
        } catch {}
    })()
    return got
}

describe("a v1 peer under load (original client: ACK on receipt, 20-line queue, resend after timeout)", function () {
    this.timeout(30000)

    afterEach(closeAll)

    async function setup(id: string) {
        const server = cleanup(new Server({ port: 0, host: "127.0.0.1", timeout: T }))
        await server.listen()
        // The application reads from the first moment it has the Connection.
        let got: string[] = []
        const ready = new Promise<Connection>((resolve) =>
            server.on("connect", (c: Connection) => {
                if (c.connects === 1) got = reader(c)
                resolve(c)
            })
        )
        const v = cleanup(new V1Client({ id, port: server.port, timeout: T, reconnectDelay: 100 })).start()
        await within(v.connected(), BOUND, "the v1 client got its first line")
        return { server, v, ready, read: () => got }
    }

    async function writes200(v: V1Client, conn: Promise<Connection>, read: () => string[], prefix: string) {
        const lines = range(200, prefix)
        const before = read().length
        const drops = v.drops
        await within(pipelined(v, lines, 64), BOUND, "200 qos writes, 64 in flight, each ACKed")
        const c = await conn
        await within(
            new Promise<void>((resolve) => {
                const check = () => (read().length >= before + 200 ? resolve() : setImmediate(check))
                check()
            }),
            BOUND,
            "the server's application read them all"
        )
        assert.deepEqual(read().slice(before), lines, "each line once, in order")
        assert.equal(v.resends, 0, "no line was sent twice on the wire")
        assert.equal(c.stats.duplicates, 0, "no duplicate reached the server")
        assert.equal(v.drops, drops, "no outage")
    }

    it("200 qos writes, 64 in flight, on the first connection: every ACK comes at once, none is resent", async function () {
        const { v, ready, read } = await setup("w1")
        await writes200(v, ready, read, "a")
    })

    it("200 qos writes, 64 in flight, on a reconnect: every ACK comes at once, none is resent", async function () {
        const { v, ready, read } = await setup("w2")
        await within(v.write("first"), BOUND, "a line on the first connection")
        const conn = await ready
        const up = new Promise<void>((resolve) => conn.on("status", (s: boolean) => s && resolve()))
        v.sock!.destroy() // a cut: the client reconnects
        await within(v.waitFor(() => v.connects === 2 && v.ready), BOUND, "the v1 client reconnected")
        await writes200(v, ready, read, "b")
        await within(up, BOUND, "the server's link up again")
        assert.equal(conn.connects, 2)
    })

    it("a 1,000-line server burst while its application reads: nothing lost, nothing twice, no overflow, no resend", async function () {
        const { v, ready } = await setup("w3")
        const conn = await within(ready, BOUND, "the server's link up")
        const got: string[] = []
        void (async () => {
            try {
                while (true) got.push(await v.readline())
            } catch {}
        })()
        const lines = range(1000, "m")
        const writes = Promise.all(lines.map((l) => conn.write(l, { wait: false })))
        // An overflow loses a line for good (it was ACKed): stop at the first.
        await within(v.waitFor(() => got.length >= 1000 || v.overflows > 0), BOUND, "the v1 application read 1,000 lines")
        assert.equal(v.overflows, 0, `the v1 client's 20-line queue overflowed (read ${got.length})`)
        await within(writes, BOUND, "every burst write ACKed")
        assert.deepEqual(got, lines, "each line once, in order")
        const messages = v.rawLines.filter((l) => l.length > 2).length
        assert.equal(messages, 1000, "message lines on the wire: one per line, no resend")
        assert.equal(conn.stats.resent, 0, "the server resent nothing")
        assert.equal(v.duplicates, 0)
        assert.equal(v.drops, 0, "no outage")
    })
})
