// The state folder (--state) on a disk that fills up: a real tmpfs of a few
// megabytes, mounted for the test (root only; without the right to mount
// the tests are pending). Lines the server cannot record are not ACKed (the
// sender keeps them and sends them again), the error names the file and
// the cause, the metrics say so, and it recovers by itself once space is
// freed; a restart on the full disk starts.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pino } from "pino"
import { Client, openState, Server, silentLogger, type Logger } from "../../src/server/index.js"
import { Fleet } from "../../src/server/fleet.js"
import { Metrics } from "../../src/server/metrics.js"
import { cleanup, closeAll, until, within } from "../kit/util.js"

// Fills the disk of `dir` to its last page; returns the file that does.
function fill(dir: string): string {
    const f = join(dir, "filler")
    const fd = openSync(f, "w")
    try {
        for (const size of [1 << 16, 4096, 512, 1]) {
            const b = Buffer.alloc(size)
            try {
                for (;;) writeSync(fd, b)
            } catch (e) {
                if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e
            }
        }
    } finally {
        closeSync(fd)
    }
    return f
}

function recorder(): { logger: Logger; msgs: string[] } {
    const msgs: string[] = []
    const logger = pino({ level: "info", base: undefined }, { write: (s: string) => void msgs.push((JSON.parse(s) as { msg: string }).msg) })
    return { logger, msgs }
}

describe("the state folder on a full disk (a real tmpfs)", function () {
    this.timeout(60000)
    let mnt = ""
    let why = ""
    before(function () {
        mnt = mkdtempSync(join(tmpdir(), "devs-iot-diskfull-"))
        const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], { encoding: "utf8" })
        if (r.status !== 0) why = `mount -t tmpfs not permitted here (${(r.stderr || r.error?.message || "").trim()})`
    })
    beforeEach(function () {
        if (why !== "") {
            this.currentTest!.title += ` (pending: ${why})`
            this.skip()
        }
    })
    afterEach(async () => {
        // Room first, so that what closes can write.
        if (why === "") rmSync(join(mnt, "filler"), { force: true })
        await closeAll()
        if (why === "") rmSync(join(mnt, "state"), { recursive: true, force: true })
    })
    after(() => {
        if (why === "") spawnSync("umount", [mnt])
        rmSync(mnt, { recursive: true, force: true })
    })

    it("a line that cannot be recorded is not ACKed; the error names the file and ENOSPC, the metrics count it; once space is freed every line arrives, once", async function () {
        const { logger, msgs } = recorder()
        const state = await openState(join(mnt, "state"), { side: "server", logger })
        cleanup({ close: () => state.close() }) // after the server
        const server = cleanup(new Server({ port: 0, host: "127.0.0.1", state, logger }))
        await server.listen()
        const fleet = new Fleet(server)
        const metrics = cleanup(new Metrics(fleet))
        const client = cleanup(new Client({ id: "full-1", port: server.port, timeout: 1000, logger: silentLogger() }).start())
        const conn = await within(server.clientConn("full-1"), 10000, "full-1 connected")
        const got: string[] = []
        void (async () => {
            for await (const l of conn) got.push(l)
        })().catch(() => {})
        await within(client.write("line 0"), 10000, "line 0 ACKed on a disk with room")
        const filler = fill(mnt)
        const events: string[] = []
        let sent = 0
        const writing = (async () => {
            for (let i = 1; i <= 300; i++) {
                sent = i
                await client.write(`line ${i} ${"x".repeat(200)}`)
                events.push(`acked ${i}`)
            }
        })()
        await until(() => server.stateWrites().failures >= 3, 30000, "the state's writes refused three times")
        const inFlight = sent
        assert.equal(server.stateWrites().ok, false)
        assert.match(state.writeError ?? "", new RegExp(`state file ${join(mnt, "state")}/(journal\\.bin|data\\.mdb): write failed: .*(ENOSPC|No space left on device)`))
        assert.ok(msgs.some((m) => m.includes(join(mnt, "state")) && /ENOSPC|No space left/.test(m)), msgs.join("\n"))
        const text = (await metrics.text()).body
        assert.match(text, /devs_iot_state_writable 0/)
        assert.match(text, /devs_iot_state_write_failures_total [1-9]/)
        events.push("freed")
        rmSync(filler)
        await within(writing, 30000, "every write ACKed once space is freed")
        // The write in flight while the disk refused was ACKed only after.
        assert.ok(events.indexOf(`acked ${inFlight}`) > events.indexOf("freed"), `write ${inFlight}: ${events.slice(-5).join(", ")}`)
        await until(() => got.length === 301, 10000, "every line read")
        assert.deepEqual(got.map((l) => l.split(" ").slice(0, 2).join(" ")), Array.from({ length: 301 }, (_, i) => `line ${i}`))
        await until(() => server.stateWrites().ok, 10000, "the state writable again")
        assert.equal(msgs.filter((m) => m.startsWith(`state folder ${join(mnt, "state")}: the disk refuses writes`)).length, 1, msgs.join("\n"))
        assert.ok(msgs.some((m) => m.startsWith(`state folder ${join(mnt, "state")}: writes hold again`)), msgs.join("\n"))
        assert.match((await metrics.text()).body, /devs_iot_state_writable 1/)
    })

    it("a restart on a full disk, the journal not yet applied to the database: it starts, the ids it has no pending records of come up, the rest once space is freed", async function () {
        const dir = join(mnt, "state")
        mkdirSync(dir)
        // A server's life that ends in a kill with records in the journal only.
        const index = new URL("../../src/server/index.js", import.meta.url).href
        const code = `const M = await import(${JSON.stringify(index)})
const st = await M.openState(${JSON.stringify(dir)}, { side: "server" })
const link = (e) => ({ epoch: e, peerEpoch: "p", seen: new Array(32).fill(0), newest: -1, nextSeq: 1, received: 0, duplicates: 0, resent: 0 })
st.forId("in-db").saveLink(link("a"))
st.commit()
st.close()
const again = await M.openState(${JSON.stringify(dir)}, { side: "server" })
const s = again.forId("in-journal")
s.saveLink(link("b"))
for (let i = 0; i < 10; i++) s.putOwed({ key: i, seq: -1, wait: false, payload: Buffer.from("owed " + i) })
again.commit()
process.kill(process.pid, "SIGKILL")`
        const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8" })
        assert.equal(r.signal, "SIGKILL", r.stderr)
        const filler = fill(mnt)
        const { logger, msgs } = recorder()
        const state = await openState(dir, { side: "server", logger })
        cleanup({ close: () => state.close() })
        assert.ok(msgs.some((m) => m.startsWith(`state folder ${dir}: the disk refuses writes (state file ${dir}/data.mdb: write failed: No space left on device`)), msgs.join("\n"))
        assert.equal(state.load("in-db")?.link.epoch, "a")
        assert.throws(() => state.load("in-journal"), /write failed/)
        rmSync(filler)
        const saved = state.load("in-journal")
        assert.equal(saved?.link.epoch, "b")
        assert.deepEqual(saved?.owed.map((o) => Buffer.from(o.payload).toString()), Array.from({ length: 10 }, (_, i) => `owed ${i}`))
    })

    it("a first start on a full disk is refused naming the file and ENOSPC, and leaves the folder empty; once space is freed it starts", async function () {
        const dir = join(mnt, "state")
        mkdirSync(dir)
        const filler = fill(mnt)
        await assert.rejects(openState(dir, { side: "server" }), new RegExp(`state file ${dir}/owner\\.(id|pid): cannot write it: ENOSPC`))
        assert.deepEqual(readdirSync(dir), [])
        rmSync(filler)
        const st = await openState(dir, { side: "server" })
        cleanup({ close: () => st.close() })
        assert.equal(st.load("nobody"), undefined)
    })

    it("a close on a full disk whose commits all held: no error (the checkpoint it cannot write is left in the journal); the next start has every record", async function () {
        const dir = join(mnt, "state")
        const st = await openState(dir, { side: "server" })
        const s = st.forId("closing")
        s.saveLink({ epoch: "c", peerEpoch: "p", seen: new Array(32).fill(0), newest: -1, nextSeq: 1, received: 0, duplicates: 0, resent: 0 })
        for (let i = 0; i < 5; i++) s.putOwed({ key: i, seq: -1, wait: false, payload: Buffer.from(`owed ${i}`) })
        st.commit()
        const filler = fill(mnt)
        st.close()
        rmSync(filler)
        const again = await openState(dir, { side: "server" })
        cleanup({ close: () => again.close() })
        assert.deepEqual(again.load("closing")?.owed.map((o) => Buffer.from(o.payload).toString()), Array.from({ length: 5 }, (_, i) => `owed ${i}`))
    })

    it("the database's map grows past the mapSize it was opened with (lmdb-js grows it on MDB_MAP_FULL)", async function () {
        const dir = join(tmpdir(), `devs-iot-mapfull-${process.pid}`)
        rmSync(dir, { recursive: true, force: true })
        try {
            const st = await openState(dir, { side: "server", mapSize: 64 * 1024 })
            const s = st.forId("big")
            s.saveLink({ epoch: "e", peerEpoch: "p", seen: new Array(32).fill(0), newest: -1, nextSeq: 1, received: 0, duplicates: 0, resent: 0 })
            for (let i = 0; i < 2000; i++) s.putOwed({ key: i, seq: -1, wait: false, payload: Buffer.alloc(500, 65) })
            st.close() // commits and applies it all to the database
            const again = await openState(dir, { side: "server", mapSize: 64 * 1024 })
            assert.equal(again.load("big")?.owed.length, 2000)
            again.close()
        } finally {
            rmSync(dir, { recursive: true, force: true })
        }
    })
})
