// Delivery state across a restart, in one process: a Server (or Client) is
// dropped the way a crash drops it (its sockets destroyed, nothing more
// sent), and a new one starts on the same state. The system layer does the
// same with SIGKILL (state-kill.test.ts).
import assert from "node:assert/strict"
import { appendFileSync, chmodSync, chownSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { connect } from "node:net"
import { once } from "node:events"
import { spawn } from "node:child_process"
import { Client, type Connection, DiskState, MemoryState, Server, StateError, type StateStore } from "../../src/server/index.js"
import type { Logger } from "../../src/server/log.js"
import type { Warning } from "../../src/server/warning.js"
import { nextWarning } from "../kit/sockets.js"
import { cli, until, within } from "../kit/util.js"
import { decodeJournal, FrameWriter, J_DROP_OWED, J_LINK, J_OWED } from "../../src/server/journal.js"

// Drops a server as a kill would: no graceful close, no ACK of what its
// application read, no more bytes.
function crash(server: Server): void {
    const s = server as unknown as { net: { close(): void }; conns: Map<string, { socket?: { destroy(): void } }> }
    s.net.close()
    for (const c of s.conns.values()) c.socket?.destroy()
}

function crashClient(client: Client): void {
    const c = client as unknown as { socket?: { destroy(): void }; closed: boolean; retry?: NodeJS.Timeout }
    c.closed = true
    if (c.retry) clearTimeout(c.retry)
    c.socket?.destroy()
}

// The seen bits recorded for `id` in a state folder.
async function DiskStateOf(dir: string, id: string): Promise<number[]> {
    const st = await DiskState.open(dir)
    try {
        return st.load(id)!.link.seen
    } finally {
        st.close()
    }
}

function popcount(b: number): number {
    let n = 0
    for (; b; b &= b - 1) n++
    return n
}

// DiskState.open in a child process (where LMDB may crash), as user 65534
// with `asOther`: how it ended and what it printed.
async function openInChild(dir: string, asOther = false): Promise<{ signal: string | null; out: string }> {
    const code = `import { DiskState } from ${JSON.stringify(new URL("../../src/server/index.js", import.meta.url).href)}
try { (await DiskState.open(${JSON.stringify(dir)})).close(); console.log("opened") } catch (e) { console.log(e.name + ": " + e.message) }`
    const argv = [process.execPath, "--input-type=module", "-e", code]
    const child = asOther ? spawn("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", ...argv]) : spawn(argv[0]!, argv.slice(1))
    let out = ""
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()))
    child.stderr!.on("data", (b: Buffer) => (out += b.toString()))
    const [, signal] = (await within(once(child, "exit"), 60000, "child exit")) as [number | null, string | null]
    return { signal, out }
}

// One life of a server on `state` with maxClients `max`: each of `ids`
// connects (a client each, in order) and sends a line the server reads;
// `body` runs; then all close, each client's link down before the next.
async function lifeWith(state: StateStore, max: number, ids: string[], body: (conns: Connection[], clients: Client[]) => Promise<void>): Promise<void> {
    const server = new Server({ port: 0, host: "127.0.0.1", timeout: 1000, state, limits: { maxClients: max, newIdRate: 1000, newIdBurst: 1000 } })
    await server.listen()
    const clients: Client[] = []
    const conns: Connection[] = []
    try {
        for (const id of ids) {
            const c = new Client({ id, port: server.port, timeout: 1000, backoffFirst: 20, backoffCap: 100 }).start()
            clients.push(c)
            const conn = await within(server.clientConn(id), 10000, `${id} up`)
            conns.push(conn)
            await within(c.write(`from ${id}`), 10000, `${id}'s line ACKed`)
            assert.equal(await within(conn.readline(), 10000, `${id}'s line`), `from ${id}`)
        }
        await body(conns, clients)
        for (const [i, c] of clients.entries()) {
            if (!conns[i]!.status()) continue // closed by `body`
            const down = once(conns[i]!, "status") // down: the only change after up
            await c.close()
            await within(down, 10000, `${ids[i]} down`)
        }
    } finally {
        for (const c of clients) await c.close()
        await server.close()
    }
}

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "../../../test/fixtures")

// Each id's `at` in a state folder's link records, read with lmdb itself.
async function rawLinks(dir: string): Promise<Map<string, unknown>> {
    const { open } = (await import("lmdb")) as unknown as { open(o: object): { getRange(o: object): Iterable<{ key: [string, number]; value: { at?: unknown } }>; close(): Promise<void> } }
    const db = open({ path: dir, readOnly: true, compression: false, cache: false })
    try {
        const out = new Map<string, unknown>()
        for (const { key, value } of db.getRange({ start: [""], end: ["\uffff"] })) if (key[1] === 0) out.set(key[0], value.at)
        return out
    } finally {
        await db.close()
    }
}

const dirs: string[] = []
function tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), "devs-iot-state-"))
    dirs.push(d)
    return d
}

// The folder as the disk holds it after a kill (the page cache), copied aside.
function killCopy(dir: string): string {
    const copy = tempDir()
    for (const f of readdirSync(dir)) if (f !== "lock.mdb") copyFileSync(join(dir, f), join(copy, f))
    return copy
}

// What a kill inside the write of a large frame leaves: its header (a body
// of 100000 bytes) and the first 20 bytes of the body.
function tornFrame(): Buffer {
    return Buffer.concat([header(100000), Buffer.alloc(20, 7)])
}

// A journal frame of id "t": its link and one owed line (key `key`); and a
// frame header with a body of `len` bytes.
function frameOf(key: number): Buffer {
    const f = new FrameWriter()
    f.link(Buffer.from("t"), { epoch: "e1", peerEpoch: "", seen: new Array(32).fill(0), newest: -1, nextSeq: key, received: 0, duplicates: 0, resent: 0 })
    f.owed(Buffer.from("t"), { key, seq: -1, wait: false, payload: Buffer.from("line " + key) })
    return Buffer.from(f.buffer().subarray(0, f.length()))
}
function header(len: number): Buffer {
    const h = Buffer.alloc(12)
    h.writeUInt32LE(len, 0)
    h.writeUInt32LE(0xd5a7e002, 4)
    return h
}
// The same frame in the first format: mark 0xD5A7E001, no CRC.
function noCrc(f: Buffer): Buffer {
    const h = Buffer.alloc(8)
    h.writeUInt32LE(f.readUInt32LE(0), 0)
    h.writeUInt32LE(0xd5a7e001, 4)
    return Buffer.concat([h, f.subarray(12)])
}
// The frame with its line's text turned to zeros, its lengths intact.
function zerosInPayload(f: Buffer, text: string): Buffer {
    const z = Buffer.from(f)
    z.fill(0, f.indexOf(text), f.indexOf(text) + text.length)
    return z
}
const A = frameOf(1)
const B = frameOf(2)

// Journals as a kill or a power cut may leave them: what is past the last
// whole frame is dropped (`dropped` bytes, the frames before it replayed), a
// journal damaged before whole frames is an error naming the byte.
const journals: Array<[string, Buffer, { keys: number[]; dropped: number } | { damagedAt: number }]> = [
    ["a frame header cut short (a kill)", Buffer.concat([A, B, B.subarray(0, 5)]), { keys: [1, 2], dropped: 5 }],
    ["a frame body cut short (a kill)", Buffer.concat([A, B.subarray(0, B.length - 3)]), { keys: [1], dropped: B.length - 3 }],
    ["only a torn frame (a kill in the first write after a checkpoint)", tornFrame(), { keys: [], dropped: 32 }],
    ["zeros past the last frame (a power cut: the length written back, not the data)", Buffer.concat([A, Buffer.alloc(4096)]), { keys: [1], dropped: 4096 }],
    ["a frame header with a body of zeros (a power cut)", Buffer.concat([A, header(146), Buffer.alloc(146)]), { keys: [1], dropped: 158 }],
    ["a last frame with zeros inside its line (a power cut: the header written back, part of the body not)", Buffer.concat([A, zerosInPayload(B, "line 2")]), { keys: [1], dropped: B.length }],
    ["frames of the first format (no CRC), then one of this format", Buffer.concat([noCrc(A), B]), { keys: [1, 2], dropped: 0 }],
    ["a frame of the first format cut short", Buffer.concat([A, noCrc(B).subarray(0, 20)]), { keys: [1], dropped: 20 }],
    ["bytes that are neither a frame nor zeros past the last frame", Buffer.concat([A, Buffer.alloc(40, 0x33)]), { damagedAt: A.length }],
    ["bytes that are not a frame between whole frames", Buffer.concat([A, Buffer.alloc(16, 0x33), B]), { damagedAt: A.length }],
    ["zeros between whole frames", Buffer.concat([A, Buffer.alloc(64), B]), { damagedAt: A.length }],
    ["a torn frame followed by whole frames", Buffer.concat([A, tornFrame(), B]), { damagedAt: A.length }],
    ["a frame with zeros inside its line followed by a whole frame", Buffer.concat([zerosInPayload(A, "line 1"), B]), { damagedAt: 0 }],
]

const stores: Array<[string, () => Promise<{ open: () => Promise<StateStore> }>]> = [
    ["in memory", async () => {
        const m = new MemoryState()
        return { open: async () => m }
    }],
    ["on disk", async () => {
        const dir = tempDir()
        let last: StateStore | undefined
        return {
            open: async () => {
                last?.close()
                return (last = await DiskState.open(dir))
            },
        }
    }],
]

describe("delivery state across restarts", function () {
    this.timeout(30000)
    const closers: Array<() => Promise<void> | void> = []
    afterEach(async () => {
        for (const c of closers.splice(0).reverse()) await c()
    })
    after(() => {
        for (const d of dirs) rmSync(d, { recursive: true, force: true })
    })

    for (const [name, make] of stores) {
        it(`${name}: a line the server's application took before a crash, not yet ACKed, is not delivered again by the restarted server`, async () => {
            const st = await make()
            const s1 = new Server({ port: 0, host: "127.0.0.1", timeout: 1000, state: await st.open() })
            await s1.listen()
            const port = s1.port
            const client = new Client({ id: "c1", port, timeout: 1000, backoffFirst: 20, backoffCap: 100 }).start()
            closers.push(() => client.close())
            const acked = client.write("a")
            const conn = await within(s1.clientConn("c1"), 10000, "client up")
            assert.equal(await within(conn.readline(), 10000, "line a"), "a")
            crash(s1) // before the ACK leaves (it waits for the next turn)
            closers.push(() => s1.close())
            const s2 = new Server({ port, host: "127.0.0.1", timeout: 1000, state: await st.open() })
            await s2.listen()
            closers.push(() => s2.close())
            await within(acked, 10000, "a ACKed by the restarted server")
            await client.write("b")
            const c2 = await s2.clientConn("c1")
            assert.equal(await within(c2.readline(), 10000, "next line"), "b", "the restarted server delivered a again")
        })

        it(`${name}: a batch the server's application took with readlines() before a crash, not yet ACKed, is not delivered again; the lines after it are`, async () => {
            const st = await make()
            const s1 = new Server({ port: 0, host: "127.0.0.1", timeout: 1000, state: await st.open() })
            await s1.listen()
            const port = s1.port
            const client = new Client({ id: "c3", port, timeout: 1000, backoffFirst: 20, backoffCap: 100 }).start()
            closers.push(() => client.close())
            const conn = await within(s1.clientConn("c3"), 10000, "client up")
            // Three lines there at once (ACKed unread after ackDelay, so kept with their payload).
            const first = Promise.all(["a", "b", "c"].map((l) => client.write(l, { wait: false })))
            await within(first, 10000, "a, b, c ACKed unread")
            assert.deepEqual(await within(conn.readlines(), 10000, "the batch"), ["a", "b", "c"])
            const d = client.write("d", { wait: false })
            const e = client.write("e", { wait: false })
            assert.deepEqual(await within(conn.readlines(1), 10000, "d"), ["d"])
            crash(s1) // d taken, its ACK not sent; e not taken
            closers.push(() => s1.close())
            const s2 = new Server({ port, host: "127.0.0.1", timeout: 1000, state: await st.open() })
            await s2.listen()
            closers.push(() => s2.close())
            await within(Promise.all([d, e]), 10000, "d and e ACKed by the restarted server")
            await client.write("f")
            const c2 = await s2.clientConn("c3")
            const got: string[] = []
            while (got.at(-1) !== "f") got.push(...(await within(c2.readlines(), 10000, `lines up to f (got ${JSON.stringify(got)})`)))
            assert.deepEqual(got, ["e", "f"], "the restarted server delivered a taken line again, or lost one")
        })

        it(`${name}: a line a relay held and settled is not given again after a crash, and leaves no record of its payload`, async () => {
            const st = await make()
            const state = await st.open()
            const s1 = new Server({ port: 0, host: "127.0.0.1", timeout: 1000, state })
            closers.push(() => s1.close())
            await s1.listen()
            const port = s1.port
            const client = new Client({ id: "r1", port, timeout: 1000, backoffFirst: 20, backoffCap: 100 }).start()
            closers.push(() => client.close())
            const conn = await within(s1.clientConn("r1"), 10000, "client up")
            const a = client.write("a")
            const held = await within(conn.hold(), 10000, "a held")
            assert.equal(held.payload, "a")
            conn.settle(held)
            await within(a, 10000, "a ACKed on settle")
            // One ACKed before it was held (unread past ackDelay), then held and settled.
            await within(client.write("k", { wait: false }), 10000, "k ACKed unread")
            const k = await within(conn.hold(), 10000, "k held")
            assert.equal(k.payload, "k")
            conn.settle(k)
            state.commit()
            assert.deepEqual(state.load("r1")!.kept.map((x) => x.payload.toString()), [], "a settled line left its payload in the state")
            crash(s1)
            const s2 = new Server({ port, host: "127.0.0.1", timeout: 1000, state: await st.open() })
            await s2.listen()
            closers.push(() => s2.close())
            await client.write("b")
            const c2 = await s2.clientConn("r1")
            const next = await within(c2.hold(), 10000, "next held line")
            assert.equal(next.payload, "b", "the restarted server gave a settled line again")
            c2.settle(next)
        })

        it(`${name}: a line owed to a client that is down survives a server crash, and a client crash does not read a line twice`, async () => {
            const st = await make()
            const s1 = new Server({ port: 0, host: "127.0.0.1", timeout: 1000, state: await st.open() })
            await s1.listen()
            const port = s1.port
            const cstate = new MemoryState()
            const c1 = new Client({ id: "c2", port, timeout: 1000, backoffFirst: 20, backoffCap: 100, state: cstate }).start()
            const conn = await within(s1.clientConn("c2"), 10000, "client up")
            void conn.write("x").catch(() => {})
            assert.equal(await within(c1.readline(), 10000, "x"), "x")
            crashClient(c1) // x read, its ACK not sent
            void conn.write("y").catch(() => {}) // owed while the client is down
            await new Promise((r) => setImmediate(r))
            crash(s1)
            closers.push(() => s1.close())
            const s2 = new Server({ port, host: "127.0.0.1", timeout: 1000, state: await st.open() })
            await s2.listen()
            closers.push(() => s2.close())
            const c2 = new Client({ id: "c2", port, timeout: 1000, backoffFirst: 20, backoffCap: 100, state: cstate }).start()
            closers.push(() => c2.close())
            assert.equal(await within(c2.readline(), 10000, "y after both restarts"), "y", "x read twice, or y lost")
        })

        it(`${name}: ids stored by earlier lives count toward maxClients: five ids over five restarts at maxClients 3 leave the three seen last, and a line owed to a dropped one goes with it`, async () => {
            const st = await make()
            let state!: StateStore
            for (const id of ["i1", "i2", "i3", "i4", "i5"]) {
                state = await st.open()
                await lifeWith(state, 3, [id], async (conns, clients) => {
                    if (id !== "i1") return
                    const down = once(conns[0]!, "status")
                    await clients[0]!.close()
                    await within(down, 10000, "i1 down")
                    void conns[0]!.write("owed to i1").catch(() => {})
                })
                if (id === "i1") assert.deepEqual(state.load("i1")!.owed.map((o) => o.payload.toString()), ["owed to i1"])
            }
            for (const id of ["i1", "i2"]) assert.equal(state.load(id), undefined, `${id} still stored`)
            for (const id of ["i3", "i4", "i5"]) assert.notEqual(state.load(id), undefined, `${id} dropped`)
            assert.deepEqual(state.ids?.(), ["i3", "i4", "i5"])
        })

        it(`${name}: a stored id that comes back takes its own place at the cap; a live link is never dropped for a stored one, nor for a newcomer`, async () => {
            const st = await make()
            await lifeWith(await st.open(), 2, ["old"], async () => {})
            const state = await st.open()
            const server = new Server({ port: 0, host: "127.0.0.1", timeout: 1000, state, limits: { maxClients: 2, newIdRate: 1000, newIdBurst: 1000 } })
            await server.listen()
            closers.push(() => server.close())
            const live = new Client({ id: "live", port: server.port, timeout: 1000, backoffFirst: 20, backoffCap: 100 }).start()
            closers.push(() => live.close())
            const liveConn = await within(server.clientConn("live"), 10000, "live up")
            // At the cap (live and the stored old): old comes back, nothing is evicted.
            const evicted: string[] = []
            server.on("warning", (w: Warning) => w.code === "id-evicted" && evicted.push(w.id!))
            const old = new Client({ id: "old", port: server.port, timeout: 1000, backoffFirst: 20, backoffCap: 100 }).start()
            closers.push(() => old.close())
            await within(server.clientConn("old"), 10000, "old up")
            const full = nextWarning(server, "too-many-clients", 10000)
            const sock = connect({ port: server.port, host: "127.0.0.1" })
            closers.push(() => void sock.destroy())
            await once(sock, "connect")
            sock.write("newcomer\n")
            assert.equal((await full).id, "newcomer")
            assert.deepEqual(evicted, [])
            assert.ok(liveConn.status() && server.connection("old")!.status(), "both links up")
            await live.close()
            await old.close()
            await server.close()
            assert.deepEqual(new Set(state.ids?.()), new Set(["live", "old"]))
        })
    }

    it("on disk: a folder written by the version before last-seen times (no `at` in its link records) opens with its lines, gets a time per id, and counts toward maxClients", async () => {
        // Made by that version: a server with ids old-a, old-b, old-c (in that
        // order), then a line written to old-b while it was down.
        const dir = tempDir()
        for (const f of ["data.mdb", "devs-iot-state.json", "journal.bin"]) copyFileSync(join(FIXTURES, "state-before-seen", f), join(dir, f))
        let state = await DiskState.open(dir, { side: "server" })
        assert.equal(state.load("old-b")!.link.nextSeq, 1)
        assert.equal("at" in state.load("old-b")!.link, false, "the store's time is not the core's")
        assert.deepEqual(state.load("old-b")!.owed.map((o) => o.payload.toString()), ["owed to old-b"])
        assert.deepEqual(new Set(state.ids()), new Set(["old-a", "old-b", "old-c"]))
        state.close()
        const raw = await rawLinks(dir)
        assert.deepEqual([...raw.keys()].sort(), ["old-a", "old-b", "old-c"])
        for (const [id, at] of raw) assert.equal(typeof at, "number", `${id}: its time written at the first start`)
        state = await DiskState.open(dir, { side: "server" })
        closers.push(() => state.close())
        // old-b comes back for its line; a new id at maxClients 3 drops a stored one, not old-b.
        await lifeWith(state, 3, ["old-b", "new"], async (conns, clients) => {
            assert.equal(await within(clients[0]!.readline(), 10000, "old-b's owed line"), "owed to old-b")
        })
        assert.equal(state.ids().length, 3)
        assert.ok(state.has("old-b") && state.has("new"))
    })

    it("on disk: the order of last-seen times holds across a clock set back, and across restarts", async () => {
        const dir = tempDir()
        let state = await DiskState.open(dir)
        const rec = { epoch: "e", peerEpoch: "", seen: new Array(32).fill(0), newest: 0, nextSeq: 0, received: 0, duplicates: 0, resent: 0 }
        for (const id of ["a", "b", "c"]) state.forId(id).saveLink(rec)
        state.commit()
        const now = Date.now
        try {
            Date.now = () => now() - 86400000 // a day back
            state.seen("a")
            state.seen("b")
        } finally {
            Date.now = now
        }
        assert.deepEqual(state.ids(), ["c", "a", "b"])
        state.close()
        state = await DiskState.open(dir)
        closers.push(() => state.close())
        assert.deepEqual(state.ids(), ["c", "a", "b"])
    })

    it("on disk: a line ACKed just before a client crash, its record's removal not yet committed, is sent again and ACKed as a duplicate, not read twice", async () => {
        const server = new Server({ port: 0, host: "127.0.0.1", timeout: 1000 })
        await server.listen()
        closers.push(() => server.close())
        const dir = tempDir()
        const c1 = new Client({ id: "c4", port: server.port, timeout: 1000, backoffFirst: 20, backoffCap: 100, state: await DiskState.open(dir) }).start()
        const conn = await within(server.clientConn("c4"), 10000, "client up")
        const acked = c1.write("x")
        assert.equal(await within(conn.readline(), 10000, "x"), "x")
        await within(acked, 10000, "x ACKed")
        // A kill now: the folder as the disk holds it (the page cache), copied aside.
        const copy = tempDir()
        for (const f of readdirSync(dir)) if (f !== "lock.mdb") copyFileSync(join(dir, f), join(copy, f))
        crashClient(c1)
        const c2 = new Client({ id: "c4", port: server.port, timeout: 1000, backoffFirst: 20, backoffCap: 100, state: await DiskState.open(copy) }).start()
        closers.push(() => c2.close())
        await within(c2.write("y"), 10000, "y ACKed")
        assert.equal(await within(conn.readline(), 10000, "next line"), "y", "x was read twice")
        assert.equal(conn.stats.duplicates, 1, "x was not sent again: its removal was already on disk")
    })

    it("on disk: a line whose take cannot be recorded (a full disk) is not given to the reader, nor recorded as taken; once the disk takes writes again it is given, once", async () => {
        const dir = tempDir()
        const st = await DiskState.open(dir)
        const server = new Server({ port: 0, host: "127.0.0.1", timeout: 1000, state: st })
        await server.listen()
        closers.push(() => server.close())
        const client = new Client({ id: "c6", port: server.port, timeout: 1000, backoffFirst: 20, backoffCap: 100 }).start()
        closers.push(() => client.close())
        const conn = await within(server.clientConn("c6"), 10000, "client up")
        await client.write("a")
        assert.equal(await within(conn.readline(), 10000, "a"), "a")
        const bits = async (folder: string) => (await DiskStateOf(folder, "c6")).reduce((n, b) => n + popcount(b), 0)
        // The journal's write fails as on a full disk (its descriptor now read-only).
        const inner = st as unknown as { fd: number }
        const fd = inner.fd
        inner.fd = openSync(join(dir, "journal.bin"), "r")
        let got: string | undefined
        const reading = conn.readline().then((l) => (got = l))
        const down = once(client, "status")
        const b = client.write("b")
        await within(down, 10000, "the server closes the link when the commit fails")
        assert.equal(got, undefined, "b was given to the reader without its take on disk")
        // A kill now: the folder as the disk holds it has a's take and not b's.
        const copy = tempDir()
        for (const f of readdirSync(dir)) if (f !== "lock.mdb") copyFileSync(join(dir, f), join(copy, f))
        assert.equal(await bits(copy), 1, "b recorded as taken, or a not")
        closeSync(inner.fd)
        inner.fd = fd
        assert.equal(await within(reading, 10000, "b once the disk takes writes"), "b")
        await within(b, 10000, "b ACKed")
        await client.write("c")
        assert.equal(await within(conn.readline(), 10000, "c"), "c", "b was given twice")
        // A line already there when the reader asks (taken outside the drive loop).
        const d = client.write("d")
        await until(() => conn.queued().in > 0, 10000, "d at the server, unread")
        inner.fd = openSync(join(dir, "journal.bin"), "r")
        let batch: string[] | undefined
        const down2 = once(client, "status")
        const taking = conn.readlines().then((l) => (batch = l))
        await within(down2, 10000, "the server closes the link when the commit fails")
        assert.equal(batch, undefined, "d was given without its take on disk")
        closeSync(inner.fd)
        inner.fd = fd
        assert.deepEqual(await within(taking, 10000, "d once the disk takes writes"), ["d"])
        await within(d, 10000, "d ACKed")
        await client.write("e")
        assert.equal(await within(conn.readline(), 10000, "e"), "e", "d was given twice")
    })

    it("a state folder that refuses writes (a full disk) closes every busy link with one error line for all, at the warning rate, without a stack; once it takes writes the links come up", async () => {
        const mem = new MemoryState()
        let full = true
        let refused = 0
        const state: StateStore = Object.assign(Object.create(mem) as StateStore, {
            commit() {
                if (!full) return mem.commit()
                refused++
                throw new StateError("state file /state/journal.bin: write failed: ENOSPC: no space left on device, write")
            },
        })
        const errors: Array<{ o: Record<string, unknown>; m: string }> = []
        const log = { error: (o: Record<string, unknown>, m: string) => void errors.push({ o, m }), warn() {}, info() {}, debug() {}, fatal() {}, child: () => log } as unknown as Logger
        const server = new Server({ port: 0, host: "127.0.0.1", timeout: 1000, state, logger: log, limits: { maxWarningsPerSecond: 2 } })
        await server.listen()
        const clients = Array.from({ length: 20 }, (_, i) => new Client({ id: `full-${i}`, port: server.port, timeout: 1000 }).start())
        try {
            await until(() => refused >= 100, 30000, "100 refused commits")
            const lines = errors.length
            assert.ok(lines * 4 <= refused, `${lines} error lines for ${refused} refused commits`)
            assert.ok(errors.every((e) => e.o["stack"] === undefined && e.m.includes("/state/journal.bin")), JSON.stringify(errors.slice(0, 3)))
            full = false
            await until(() => server.connections().filter((c) => c.status()).length === clients.length, 30000, "every link up")
        } finally {
            for (const c of clients) await c.close()
            await server.close()
        }
    })

    it("an id whose link never comes up leaves nothing in the state; a line written before the first connect survives a client crash", async () => {
        const state = new MemoryState()
        const server = new Server({ port: 0, host: "127.0.0.1", timeout: 1000, state })
        await server.listen()
        closers.push(() => server.close())
        const forgot = once(server, "forget") // the stranger's Connection, with its socket
        const sock = connect({ port: server.port, host: "127.0.0.1" })
        await once(sock, "connect")
        sock.end("stranger\n")
        const [gone, why] = (await within(forgot, 10000, "the stranger forgotten")) as [Connection, string]
        assert.equal(gone.id, "stranger")
        assert.equal(why, "never-up")
        assert.equal(state.load("stranger"), undefined)
        // A client that writes before it ever connected, then dies.
        const cstate = new MemoryState()
        const c1 = new Client({ id: "early", port: 1, timeout: 1000, state: cstate })
        void c1.write("q").catch(() => {})
        await new Promise((r) => setImmediate(r))
        crashClient(c1)
        const c2 = new Client({ id: "early", port: server.port, timeout: 1000, backoffFirst: 20, backoffCap: 100, state: cstate }).start()
        closers.push(() => c2.close())
        const conn = await within(server.clientConn("early"), 10000, "client up")
        assert.equal(await within(conn.readline(), 10000, "q"), "q")
    })

    it("on disk: ids whose link never comes up leave nothing in the store's memory either (a churning or hostile fleet sends millions over weeks)", async () => {
        const state = await DiskState.open(tempDir())
        closers.push(() => state.close())
        const server = new Server({ port: 0, host: "127.0.0.1", timeout: 1000, state })
        await server.listen()
        closers.push(() => server.close())
        const n = 20
        let forgotten = 0
        const all = new Promise<void>((r) => server.on("forget", () => ++forgotten === n && r()))
        for (let i = 0; i < n; i++) {
            const sock = connect({ port: server.port, host: "127.0.0.1" })
            await once(sock, "connect")
            sock.end(`stranger-${i}\n`)
        }
        await within(all, 10000, "the strangers forgotten")
        assert.equal((state as unknown as { keys: Map<string, Buffer> }).keys.size, 0, "no id kept for a stranger")
    })

    // end() sends a corked socket's output at once: the records go first.
    it("on disk: a line that leaves as the server closes is in the journal when it leaves, its id with it", async () => {
        const dir = tempDir()
        const state = await DiskState.open(dir)
        const s1 = new Server({ port: 0, host: "127.0.0.1", timeout: 1000, state })
        await s1.listen()
        const client = new Client({ id: "c5", port: s1.port, timeout: 1000 }).start()
        const conn = await within(s1.clientConn("c5"), 10000, "client up")
        await within(conn.write("a"), 10000, "a ACKed")
        void conn.write("z", { wait: false }).catch(() => {})
        const closing = s1.close() // the same tick: z leaves with the shutdown
        const onDisk = decodeJournal(readFileSync(join(dir, "journal.bin"))).recs
        const seqs = onDisk.flatMap((r) => (r.kind === J_LINK && r.id === "c5" ? [r.link.nextSeq] : []))
        assert.equal(seqs.at(-1), 2, "the next id after z's, on disk as z leaves")
        assert.equal(await within(client.readline(), 10000, "a"), "a")
        assert.equal(await within(client.readline(), 10000, "z"), "z")
        await closing
        await client.close()
        state.close()
    })

    it("a corrupt or foreign state folder is an error naming the file, not an empty start", async () => {
        const dir = tempDir()
        writeFileSync(join(dir, "devs-iot-state.json"), JSON.stringify({ format: 1 }))
        writeFileSync(join(dir, "data.mdb"), Buffer.alloc(65536, 0x5a))
        await assert.rejects(DiskState.open(dir), (e: Error) => e instanceof StateError && e.message.includes(join(dir, "data.mdb")))
        const foreign = tempDir()
        writeFileSync(join(foreign, "notes.txt"), "mine")
        await assert.rejects(DiskState.open(foreign), (e: Error) => e instanceof StateError && e.message.includes("devs-iot-state.json"))
        const noData = tempDir() // the database gone, the journal still there
        writeFileSync(join(noData, "devs-iot-state.json"), JSON.stringify({ format: 1 }))
        writeFileSync(join(noData, "journal.bin"), "")
        await assert.rejects(DiskState.open(noData), (e: Error) => e instanceof StateError && e.message.includes(join(noData, "data.mdb")))
    })

    it("a first start that fails leaves the folder empty, and one cut short before the database is started again as new; a file it cannot write is named", async () => {
        // lmdb withheld from the process: the start fails after the marker is written.
        const hooks = tempDir()
        writeFileSync(join(hooks, "hooks.mjs"), `export async function resolve(s, c, n) { if (s === "lmdb") throw new Error("withheld by the test"); return n(s, c) }\n`)
        writeFileSync(join(hooks, "register.mjs"), `import { register } from "node:module"\nregister(new URL("./hooks.mjs", import.meta.url))\n`)
        const dir = tempDir()
        const failed = cli(["server", "--port", "0", "--host", "127.0.0.1", "--state", dir], { NODE_OPTIONS: `--import=${join(hooks, "register.mjs")}` })
        try {
            assert.equal(await within(failed.exited, 20000, "server exit"), 1)
            assert.match(failed.stderr + failed.stdout, /--state needs the lmdb package/)
        } finally {
            failed.stop()
        }
        assert.deepEqual(readdirSync(dir), [])
        const next = cli(["server", "--port", "0", "--host", "127.0.0.1", "--state", dir])
        try {
            await next.waitFor(/listening/, 20000)
        } finally {
            next.stop()
        }
        await next.exited
        // What a kill between the marker and the database leaves (and older versions left on a failure).
        const cut = tempDir()
        writeFileSync(join(cut, "devs-iot-state.json"), "")
        writeFileSync(join(cut, "owner.pid"), "999999999\n")
        const warned: string[] = []
        const st = await DiskState.open(cut, { logger: { warn: (_o: unknown, m: string) => warned.push(m) } as unknown as Logger })
        st.close()
        assert.match(warned.join("\n"), /first start was cut short/)
        // The same while its maker lives (it may be opening the database now): left alone, refused.
        const making = tempDir()
        const maker = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" })
        try {
            writeFileSync(join(making, "devs-iot-state.json"), JSON.stringify({ format: 1 }))
            writeFileSync(join(making, "owner.pid"), `${maker.pid}\n`)
            await assert.rejects(DiskState.open(making), (e: Error) => e instanceof StateError && e.message.includes(`in use by process ${maker.pid}`))
            assert.deepEqual(readdirSync(making).sort(), ["devs-iot-state.json", "owner.pid"])
        } finally {
            maker.kill("SIGKILL")
        }
        // A file in the way of one the folder needs: named, as a StateError.
        const blocked = tempDir()
        writeFileSync(join(blocked, "devs-iot-state.json"), JSON.stringify({ format: 1 }))
        ;(await DiskState.open(blocked)).close()
        rmSync(join(blocked, "owner.pid"), { force: true })
        mkdirSync(join(blocked, "owner.pid"))
        await assert.rejects(DiskState.open(blocked), (e: Error) => e instanceof StateError && e.message.includes(join(blocked, "owner.pid")))
        const dirData = tempDir() // a folder where the database should be
        writeFileSync(join(dirData, "devs-iot-state.json"), JSON.stringify({ format: 1 }))
        writeFileSync(join(dirData, "journal.bin"), "")
        mkdirSync(join(dirData, "data.mdb"))
        await assert.rejects(DiskState.open(dirData), (e: Error) => e instanceof StateError && e.message.includes(join(dirData, "data.mdb")))
        assert.ok(readdirSync(blocked).includes("data.mdb"), "a failure on a folder that holds state removes nothing")
    })

    it("checkpoints: a line written and ACKed between two checkpoints never reaches the database; one stored before is removed", async () => {
        const dir = tempDir()
        const link = { epoch: "e", peerEpoch: "", seen: new Array(32).fill(0), newest: -1, nextSeq: 0, received: 0, duplicates: 0, resent: 0 }
        const line = (key: number, seq: number) => ({ key, seq, wait: false, payload: Buffer.from("l" + key) })
        let st = await DiskState.open(dir)
        let s = st.forId("cp")
        s.saveLink(link)
        s.putOwed(line(0, -1))
        st.close() // checkpoint: line 0 in LMDB
        st = await DiskState.open(dir)
        s = st.forId("cp")
        s.putOwed(line(0, 5)) // sent after the restart
        s.dropOwed(0) // and ACKed
        s.putOwed(line(1, -1))
        s.putOwed(line(1, 6))
        s.dropOwed(1)
        s.putOwed(line(2, -1))
        st.close()
        st = await DiskState.open(dir)
        assert.deepEqual(st.load("cp")!.owed.map((o) => o.key), [2])
        const inner = st as unknown as { db: { getRange(o: unknown): Iterable<{ key: unknown }> } }
        assert.deepEqual([...inner.db.getRange({ start: ["cp", 1], end: ["cp", 2] })].map((x) => x.key), [["cp", 1, 2]])
        st.close()
    })

    it("one process per state folder: a second is refused naming the first one's pid; a dead owner's folder is taken over", async () => {
        const dir = tempDir()
        const first = cli(["server", "--port", "0", "--host", "127.0.0.1", "--state", dir])
        try {
            await first.waitFor(/listening/, 20000)
            await assert.rejects(DiskState.open(dir), (e: Error) => e instanceof StateError && e.message.includes(`in use by process ${first.child.pid}`))
        } finally {
            first.stop()
        }
        await first.exited
        const taken = await DiskState.open(dir) // its owner was killed
        taken.close()
    })

    it("two processes opening one folder at the same instant: exactly one gets it, the other is refused naming the first", async function () {
        this.timeout(120000)
        const state = new URL("../../src/server/state.js", import.meta.url).href
        // Each child spins until `at`, opens the folder, says how it went,
        // and holds it until its stdin closes.
        const code = `const { DiskState } = await import(${JSON.stringify(state)})
const at = Number(process.argv[1]), dir = process.argv[2]
while (Date.now() < at);
try { await DiskState.open(dir); console.log("open") } catch (e) { console.log("refused: " + e.message) }
process.stdin.resume(); process.stdin.on("end", () => process.exit(0))`
        for (let round = 0; round < 12; round++) {
            const dir = tempDir()
            const at = Date.now() + 400
            const kids = [0, 1].map(() => spawn(process.execPath, ["--input-type=module", "-e", code, String(at), dir], { stdio: ["pipe", "pipe", "inherit"] }))
            try {
                const said = await within(
                    Promise.all(kids.map(async (k) => (await once(k.stdout!, "data"))[0].toString().trim() as string)),
                    30000,
                    "both children opened or were refused",
                )
                const opened = kids.filter((_k, i) => said[i] === "open")
                assert.equal(opened.length, 1, `round ${round}: ${said.join(" | ")}`)
                assert.match(said.find((s) => s !== "open")!, new RegExp(`in use by process ${opened[0]!.pid}`))
                assert.equal(readFileSync(join(dir, "owner.pid"), "utf8"), `${opened[0]!.pid}\n`)
            } finally {
                for (const k of kids) k.kill("SIGKILL")
            }
        }
    })

    it("owner.lock: one left by a process killed while it took the folder is cleared once old; a fresh one is waited for", async () => {
        const dir = tempDir()
        const lock = join(dir, "owner.lock")
        mkdirSync(lock)
        const old = (Date.now() - 60000) / 1000
        utimesSync(lock, old, old)
        ;(await DiskState.open(dir)).close()
        assert.ok(!existsSync(lock), "the stale lock is gone")
        mkdirSync(lock) // another start taking the folder now
        let opened = false
        const opening = DiskState.open(dir).then((st) => ((opened = true), st))
        await new Promise((r) => setTimeout(r, 100))
        assert.equal(opened, false, "waits while the lock is held")
        rmSync(lock, { recursive: true })
        ;(await within(opening, 10000, "open once the lock is released")).close()
    })

    it("a truncated data.mdb (a copy cut short) is a StateError naming it, not a crash (LMDB's SIGBUS on the first page past the end); a whole one opens", async () => {
        const dir = tempDir()
        const st = await DiskState.open(dir)
        const s = st.forId("t")
        s.saveLink({ epoch: "e", peerEpoch: "", seen: new Array(32).fill(0), newest: -1, nextSeq: 0, received: 0, duplicates: 0, resent: 0 })
        for (let k = 0; k < 2000; k++) s.putOwed({ key: k, seq: -1, wait: false, payload: Buffer.alloc(500, 65) })
        st.close()
        const whole = await openInChild(dir)
        assert.match(whole.out, /^opened/, whole.out)
        const data = join(dir, "data.mdb")
        truncateSync(data, Math.floor(statSync(data).size / 8192) * 4096)
        const cut = await openInChild(dir)
        assert.equal(cut.signal, null, cut.out)
        assert.match(cut.out, new RegExp(`StateError: state file ${data}: truncated`))
    })

    it("a lock file LMDB cannot write, or a folder where it cannot make one, is a StateError naming it, not a crash (LMDB segfaults on both)", async function () {
        // Run as a user the files do not belong to: root may write anything.
        const root = process.getuid?.() === 0
        if (root && !existsSync("/usr/bin/setpriv")) this.skip()
        const open = (dir: string) => openInChild(dir, root)
        const folder = async (): Promise<string> => {
            const dir = tempDir()
            ;(await DiskState.open(dir)).close()
            if (root) for (const f of [dir, ...readdirSync(dir).map((x) => join(dir, x))]) chownSync(f, 65534, 65534)
            return dir
        }
        const readOnlyLock = await folder()
        if (root) chownSync(join(readOnlyLock, "lock.mdb"), 0, 0)
        chmodSync(join(readOnlyLock, "lock.mdb"), 0o444)
        const r1 = await open(readOnlyLock)
        assert.equal(r1.signal, null, r1.out)
        assert.match(r1.out, new RegExp(`StateError: state file ${join(readOnlyLock, "lock.mdb")}: cannot read and write it`))
        const noLock = await folder()
        rmSync(join(noLock, "lock.mdb"))
        if (root) chownSync(noLock, 0, 0)
        chmodSync(noLock, 0o555)
        try {
            const r2 = await open(noLock)
            assert.equal(r2.signal, null, r2.out)
            // The folder's owner.lock, made before LMDB's lock file, is the first thing it cannot make.
            assert.match(r2.out, new RegExp(`StateError: state folder ${noLock}: cannot write in it`))
        } finally {
            chmodSync(noLock, 0o755)
        }
    })

    it("one store per folder in a process too: a second open of an open folder, or one started at the same time, is refused (owner.pid holds the same pid for both), and allowed once the first is closed", async () => {
        const dir = tempDir()
        const first = await DiskState.open(dir)
        try {
            await assert.rejects(DiskState.open(join(dir, ".")), (e: Error) => e instanceof StateError && e.message.includes("already open in this process"))
        } finally {
            first.close()
        }
        ;(await DiskState.open(dir)).close()
        // Two opens at once, neither finished: one gets it.
        const both = await Promise.allSettled([DiskState.open(dir), DiskState.open(dir)])
        assert.deepEqual(both.map((r) => r.status).sort(), ["fulfilled", "rejected"])
        for (const r of both) if (r.status === "fulfilled") r.value.close()
        else assert.match((r.reason as Error).message, /already open in this process/)
    })

    it("a server's state folder is refused to a client and a client's to a server (a client with a board's id would take the board's record as its own)", async () => {
        const dir = tempDir()
        const server = cli(["server", "--port", "0", "--host", "127.0.0.1", "--state", dir])
        try {
            await server.waitFor(/listening/, 20000)
        } finally {
            server.stop()
        }
        await server.exited
        const client = cli(["client", "--id", "kitchen", "--port", "1", "--state", dir])
        try {
            assert.equal(await within(client.exited, 20000, "client exit"), 1)
            assert.match(client.stdout + client.stderr, /holds the delivery state of a server .*not of a client/)
        } finally {
            client.stop()
        }
        const mine = tempDir()
        ;(await DiskState.open(mine, { side: "client" })).close()
        await assert.rejects(DiskState.open(mine, { side: "server" }), (e: Error) => e instanceof StateError && e.message.includes("of a client"))
        ;(await DiskState.open(mine)).close() // a program that does not say which side it is
    })

    it("a dead owner's pid now held by another process (after a reboot, pids are handed out again): the folder is taken over", async function () {
        if (!existsSync("/proc/self/stat")) this.skip() // the start time comes from /proc
        // A process as owner.id names it: its boot and start time.
        const identity = (pid: number) => {
            const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
            return `${readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim()} ${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]}`
        }
        const dir = tempDir()
        const first = cli(["server", "--port", "0", "--host", "127.0.0.1", "--state", dir])
        let dead: string
        try {
            await first.waitFor(/listening/, 20000)
            dead = identity(first.child.pid!)
        } finally {
            first.stop()
        }
        await first.exited
        // Another process now has the dead owner's pid.
        const other = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" })
        try {
            writeFileSync(join(dir, "owner.pid"), `${other.pid}\n`)
            writeFileSync(join(dir, "owner.id"), `${other.pid} ${dead}\n`)
            const taken = await DiskState.open(dir)
            assert.equal(readFileSync(join(dir, "owner.id"), "utf8"), `${process.pid} ${identity(process.pid)}\n`)
            taken.close()
            // The record of the live process itself: refused, as for any live owner.
            writeFileSync(join(dir, "owner.pid"), `${other.pid}\n`)
            writeFileSync(join(dir, "owner.id"), `${other.pid} ${identity(other.pid!)}\n`)
            await assert.rejects(DiskState.open(dir), (e: Error) => e instanceof StateError && e.message.includes(`in use by process ${other.pid}`))
        } finally {
            other.kill("SIGKILL")
        }
    })

    it("the CLI: a server on a damaged state folder exits 1 naming the file; --state-sync without --state is a usage error", async () => {
        const dir = tempDir()
        writeFileSync(join(dir, "devs-iot-state.json"), JSON.stringify({ format: 1 }))
        writeFileSync(join(dir, "data.mdb"), Buffer.alloc(8192, 0x5a))
        const c = cli(["server", "--port", "0", "--host", "127.0.0.1", "--state", dir])
        try {
            assert.equal(await within(c.exited, 20000, "server exit"), 1)
            assert.ok((c.stdout + c.stderr).includes(join(dir, "data.mdb")), c.stdout + c.stderr)
        } finally {
            c.stop()
        }
        const u = cli(["server", "--port", "0", "--state-sync"])
        try {
            assert.equal(await within(u.exited, 20000, "server exit"), 2)
            assert.match(u.stderr, /--state-sync needs --state DIR/)
        } finally {
            u.stop()
        }
    })

    it("a disk that refuses a write (full) makes the commit fail loudly, naming the file; the batch stays for the next try", async () => {
        const dir = tempDir()
        const st = await DiskState.open(dir)
        const s = st.forId("full")
        s.putOwed({ key: 0, seq: -1, wait: false, payload: Buffer.from("kept") })
        st.commit()
        // The journal's write fails as on a full disk (here: its descriptor is gone).
        const inner = st as unknown as { fd: number }
        const fd = inner.fd
        inner.fd = openSync(join(dir, "journal.bin"), "r")
        s.putOwed({ key: 1, seq: -1, wait: false, payload: Buffer.from("later") })
        assert.throws(() => st.commit(), (e: Error) => e instanceof StateError && e.message.includes(join(dir, "journal.bin")) && e.message.includes("write failed"))
        closeSync(inner.fd)
        inner.fd = fd
        st.commit() // room again: the batch that failed is written now
        st.close()
        const again = await DiskState.open(dir)
        const get = (k: number) => Buffer.from((again as unknown as { db: { get(k: unknown): { payload: Buffer } } }).db.get(["full", 1, k]).payload).toString()
        assert.equal(get(0), "kept")
        assert.equal(get(1), "later")
        again.close()
    })

    it("a commit in the journal, not yet in the database, is there after a kill; a torn last frame is dropped, a damaged journal is an error naming it", async () => {
        const dir = tempDir()
        const st = await DiskState.open(dir)
        st.forId("j").putOwed({ key: 7, seq: -1, wait: true, payload: Buffer.from("journaled") })
        st.forId("j").saveLink({ epoch: "e1", peerEpoch: "p1", seen: new Array(32).fill(0), newest: -1, nextSeq: 3, received: 1, duplicates: 0, resent: 0 })
        st.commit()
        // A kill now: the process ends without a checkpoint (simulated: the journal is copied aside).
        const journal = readFileSync(join(dir, "journal.bin"))
        st.close()
        const lmdbOnly = tempDir()
        rmSync(lmdbOnly, { recursive: true })
        const fresh = await DiskState.open(lmdbOnly)
        fresh.close()
        writeFileSync(join(lmdbOnly, "journal.bin"), Buffer.concat([journal, journal.subarray(0, 11)])) // and a torn frame
        const back = await DiskState.open(lmdbOnly)
        const saved = back.load("j")!
        assert.equal(saved.link.epoch, "e1")
        assert.equal(saved.link.nextSeq, 3)
        assert.equal(saved.owed.length, 1)
        assert.equal(saved.owed[0]!.payload.toString(), "journaled")
        back.close()
        writeFileSync(join(lmdbOnly, "journal.bin"), Buffer.alloc(40, 0x33))
        await assert.rejects(DiskState.open(lmdbOnly), (e: Error) => e instanceof StateError && e.message.includes(join(lmdbOnly, "journal.bin")))
    })

    it("a torn frame a kill left is cut off at the next start: what is committed after it is there after another kill", async () => {
        const dir = tempDir()
        ;(await DiskState.open(dir)).close()
        appendFileSync(join(dir, "journal.bin"), tornFrame()) // the first frame after a checkpoint, cut short
        const st = await DiskState.open(dir)
        assert.equal(statSync(join(dir, "journal.bin")).size, 0, "the torn frame was left in the journal")
        st.forId("k").saveLink({ epoch: "e1", peerEpoch: "", seen: new Array(32).fill(0), newest: -1, nextSeq: 42, received: 0, duplicates: 0, resent: 0 })
        st.commit()
        const copy = killCopy(dir) // a kill before the next checkpoint
        st.close()
        const back = await DiskState.open(copy)
        assert.equal(back.load("k")?.link.nextSeq, 42, "a commit after the torn frame was lost")
        back.close()
    })

    it("a commit after a failed write starts on a frame boundary, also when the journal could not be cut back", async () => {
        const dir = tempDir()
        const journal = join(dir, "journal.bin")
        const line = (key: number) => ({ key, seq: -1, wait: false, payload: Buffer.from("l" + key) })
        const st = await DiskState.open(dir)
        const s = st.forId("w")
        s.saveLink({ epoch: "e1", peerEpoch: "", seen: new Array(32).fill(0), newest: -1, nextSeq: 0, received: 0, duplicates: 0, resent: 0 })
        s.putOwed(line(0))
        st.commit()
        // A write that stopped partway, and a descriptor that can neither write nor cut.
        const inner = st as unknown as { fd: number }
        const fd = inner.fd
        inner.fd = openSync(journal, "r")
        appendFileSync(journal, tornFrame())
        s.putOwed(line(1))
        assert.throws(() => st.commit(), (e: Error) => e instanceof StateError && e.message.includes(journal))
        closeSync(inner.fd)
        inner.fd = fd
        st.commit() // the failed batch again
        const copy = killCopy(dir)
        st.close()
        const back = await DiskState.open(copy)
        assert.deepEqual(back.load("w")?.owed.map((o) => o.key), [0, 1], "a commit after the failed write was lost")
        back.close()
    })

    for (const [name, journal, want] of journals) {
        it(`a journal's end that is not a whole frame (short, or failing its CRC) is dropped and logged, damage before a whole frame is an error naming the byte: ${name}`, async () => {
            const dir = tempDir()
            const file = join(dir, "journal.bin")
            ;(await DiskState.open(dir)).close()
            writeFileSync(file, journal)
            const warned: string[] = []
            const logger = { warn: (_o: unknown, m: string) => void warned.push(m) } as unknown as Logger
            if ("damagedAt" in want) {
                await assert.rejects(DiskState.open(dir, { logger }), (e: Error) => e instanceof StateError && e.message.includes(file) && e.message.includes(`byte ${want.damagedAt}`))
                assert.equal(readFileSync(file).length, journal.length, "a damaged journal was changed")
                return
            }
            const st = await DiskState.open(dir, { logger })
            try {
                assert.deepEqual(st.load("t")?.owed.map((o) => o.key) ?? [], want.keys)
                assert.equal(st.load(""), undefined, "zeros were read as a record")
                assert.equal(statSync(file).size, 0, "the journal was not emptied")
                assert.equal(warned.length, want.dropped > 0 ? 1 : 0, `logged: ${JSON.stringify(warned)}`)
                if (want.dropped > 0) assert.ok(warned[0]!.includes(file) && warned[0]!.includes(`${want.dropped} bytes`), warned[0])
            } finally {
                st.close()
            }
        })
    }

    it("a journal frame holds the last value of each owed line: recorded when written and again when sent, one record; after a drop, a later record follows it", () => {
        const id = Buffer.from("j")
        const line = (key: number, seq: number) => ({ key, seq, wait: false, payload: Buffer.from("line " + key) })
        const f = new FrameWriter()
        f.owed(id, line(1, -1))
        f.owed(id, line(2, -1))
        f.owed(id, line(1, 40)) // sent: its seq, in place
        f.owed(id, line(2, 41))
        f.drop(J_DROP_OWED, id, 1)
        f.owed(id, line(1, 42)) // after its drop: a record of its own, after the drop
        const { recs } = decodeJournal(Buffer.from(f.buffer().subarray(0, f.length())))
        assert.deepEqual(
            recs.map((r) => (r.kind === J_OWED ? `owed ${r.owed.key}:${r.owed.seq}` : r.kind === J_DROP_OWED ? `drop ${r.key}` : String(r.kind))),
            ["owed 1:40", "owed 2:41", "drop 1", "owed 1:42"],
        )
        f.reset()
        f.owed(id, line(2, 43)) // a new frame: a new record
        assert.deepEqual(decodeJournal(Buffer.from(f.buffer().subarray(0, f.length()))).recs.map((r) => (r.kind === J_OWED ? r.owed.seq : -9)), [43])
    })
})
