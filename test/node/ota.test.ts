// The OTA gateway against the wssk protocol as the board's runtime speaks it
// (test/kit/wsskboard.ts, from the C sources), and the deploy with rollback
// against a real devs-iot server. The simulator run is in ota-sim.test.ts.
import assert from "node:assert/strict"
import { createHmac, randomBytes } from "node:crypto"
import { connect } from "node:net"
import { execFileSync, spawn } from "node:child_process"
import { pino } from "pino"
import { Client, requestDeploy, Server, type DeployReport } from "../../src/server/index.js"
import { DeployRun } from "../../src/server/ota/deployrun.js"
import { CONSOLE_LINES_LOGGED, CONSOLE_LOG_PERIOD_MS, MAX_UNSENT_BYTES, OtaGateway } from "../../src/server/ota/gateway.js"
import { MAX_IMAGES_IN_MEMORY, Ota } from "../../src/server/ota/ota.js"
import { Cmd, sessionKey, sha256 } from "../../src/server/ota/wssk.js"
import { parseException } from "../../src/server/ota/boardlog.js"
import { RefBoard } from "../kit/wsskboard.js"
import { attachAdmins, MAX_QUEUED_CHARS, refuseDeploys } from "../../src/server/ota/admin.js"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"


import { cli, closeAll, cleanup, freePort, onCleanup, until, within } from "../kit/util.js"

const MAGIC = Buffer.from([0x44, 0x65, 0x76, 0x53, 0x0a, 0x6e, 0x29, 0xf1])
function image(bytes: number, fill = randomBytes(bytes - 8)): Buffer {
    return Buffer.concat([MAGIC, fill]).subarray(0, bytes)
}

async function gateway(keys: Record<string, Buffer>, warnings: string[] = []): Promise<OtaGateway> {
    const g = new OtaGateway({ port: 0, host: "127.0.0.1", keys: new Map(Object.entries(keys)), handshakeTimeout: 3000 })
    g.on("warning", (w) => warnings.push(`${w.code}: ${w.detail}`))
    await g.listen()
    return cleanup(g)
}

// Keeps trying like the runtime while `running` (every 50 ms instead of 512).
function keepTrying(b: RefBoard): () => void {
    let running = true
    void (async () => {
        while (running) {
            await b.attempt()
            await new Promise((r) => setTimeout(r, 50))
        }
    })()
    const stop = () => {
        running = false
        b.close()
    }
    onCleanup(stop)
    return stop
}

// A server with OTA on, board "b1" keyed (no board comes) and admin "ops"
// linked: the admin's Client.
async function adminOfOneBoard(): Promise<Client> {
    const adminKey = randomBytes(32)
    const port = await freePort()
    const server = cleanup(new Server({ port, host: "127.0.0.1", timeout: 1000, keys: { ops: adminKey } }))
    await server.listen()
    const ota = new Ota({ server, gateway: await gateway({ b1: randomBytes(32) }), sessionWithin: 1000 })
    attachAdmins(server, ota, ["ops"])
    return cleanup(new Client({ id: "ops", port, timeout: 1000, key: adminKey.toString("hex") }).start())
}

describe("OTA gateway (wssk)", function () {
    afterEach(closeAll)

    it("derives the session key as the runtime's jd_sha256_hkdf does", function () {
        // soft_sha256.c:94-107: HMAC(salt="", key) then HMAC(prk, info ‖ info2 ‖ 0x01)
        const master = randomBytes(32), client = randomBytes(16), seed = randomBytes(16)
        const prk = createHmac("sha256", Buffer.alloc(0)).update(master).digest()
        const okm = createHmac("sha256", prk).update(client).update(seed).update(Buffer.from([1])).digest()
        assert.deepEqual(sessionKey(master, client, seed), okm)
    })

    it("refuses a board with HTTP 403 when nothing is pending, 404 when it has no key", async function () {
        const key = randomBytes(32)
        const g = await gateway({ b1: key })
        const b = new RefBoard({ port: g.port, path: "/wssk/b1", key })
        await b.attempt()
        assert.deepEqual(b.events, ["refused 403"])
        const other = new RefBoard({ port: g.port, path: "/wssk/b9", key })
        await other.attempt()
        assert.deepEqual(other.events, ["refused 404"])
    })

    it("deploys: hash before and after, every byte, finish + get_hash + close in one write", async function () {
        const key = randomBytes(32)
        const old = image(1184), neu = image(45792)
        const g = await gateway({ b1: key })
        const b = new RefBoard({ port: g.port, path: "/wssk/b1", key, program: old })
        const session = g.want("b1")
        keepTrying(b)
        const s = await within(session, 5000, "session")
        const r = await within(s.execute(new DeployRun(neu), 10000), 10000, "deploy")
        assert.equal(r.ok, true, r.error)
        assert.equal(r.before, sha256(old).toString("hex"))
        assert.equal(r.after, sha256(neu).toString("hex"))
        assert.deepEqual(b.program, neu)
        await b.waitEvent(/ws close/, 2000)
        // The close came with finish and get_hash: nothing arrived between the program's start and the close.
        const i = b.events.indexOf("program written")
        assert.equal(b.events[i + 1], "ws close")
        assert.equal(b.streaming, 0x102)
    })

    it("a deploy that goes on past its bound is ended naming the bound and where it was, not as if nothing had come", async function () {
        const key = randomBytes(32)
        const g = await gateway({ b1: key })
        // 239 writes of at least 20 ms each cannot finish within 1000 ms.
        const b = new RefBoard({ port: g.port, path: "/wssk/b1", key, program: image(256), replyDelay: 20 })
        const session = g.want("b1")
        keepTrying(b)
        const r = await (await within(session, 5000, "session")).execute(new DeployRun(image(45792)), 1000)
        assert.equal(r.ok, false)
        assert.match(r.error ?? "", /^session ended during deploy_write at byte \d+: deploy not finished within 1000 ms$/)
    })

    it("does not deploy an image the board already runs", async function () {
        const key = randomBytes(32)
        const img = image(256)
        const g = await gateway({ b1: key })
        const b = new RefBoard({ port: g.port, path: "/wssk/b1", key, program: img })
        const session = g.want("b1")
        keepTrying(b)
        const r = await (await within(session, 5000, "session")).execute(new DeployRun(img), 5000)
        assert.equal(r.unchanged, true)
        assert.ok(!b.events.includes("deploy_start"))
    })

    it("cuts a board with the wrong key before anything is deployed", async function () {
        const warnings: string[] = []
        const g = await gateway({ b1: randomBytes(32) }, warnings)
        const old = image(256)
        const b = new RefBoard({ port: g.port, path: "/wssk/b1", key: randomBytes(32), program: old })
        void g.want("b1").catch(() => {})
        await b.attempt()
        // The board finds the gateway's proof undecryptable, or the gateway the board's.
        assert.ok(b.events.some((e) => /tag error|closed/.test(e)), b.events.join())
        assert.ok(!b.events.includes("open"))
        assert.deepEqual(b.program, old)
        g.unwant("b1", "test over")
    })

    it("cuts a session on a forged message, a text frame or an oversized frame, naming it", async function () {
        const key = randomBytes(32)
        for (const [what, act, re] of [
            ["forged", (b: RefBoard) => b.sendRaw(Buffer.from([Cmd.PingCloud]), true), /bad-message: message with a bad tag/],
            ["text", (b: RefBoard) => b.frame(1, Buffer.from("hi")), /bad-frame: text frame/],
            ["oversized", (b: RefBoard) => b.frame(2, Buffer.alloc(5000)), /bad-frame: frame of 5000 bytes/],
        ] as const) {
            const warnings: string[] = []
            const g = await gateway({ b1: key }, warnings)
            const b = new RefBoard({ port: g.port, path: "/wssk/b1", key, program: image(256) })
            const session = g.want("b1")
            const attempt = b.attempt()
            const s = await within(session, 5000, "session")
            act(b)
            assert.equal(await within(s.whenClosed(), 3000, `${what}: closed`), "connection closed")
            await attempt
            assert.ok(warnings.some((w) => re.test(w)), `${what}: ${warnings.join("; ")}`)
        }
    })

    it("a socket refused before the upgrade is read no further: a frame after its 404 ends nothing", async function () {
        const key = randomBytes(32)
        const g = await gateway({ b1: key })
        const s = connect({ port: g.port, host: "127.0.0.1", allowHalfOpen: true })
        s.on("error", () => undefined)
        onCleanup(() => void s.destroy())
        const reply = within(new Promise<string>((r) => s.once("data", (d: Buffer) => r(d.toString()))), 3000, "the refusal")
        s.write("GET /wssk/nobody HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert.match(await reply, /^HTTP\/1.1 404/)
        s.end(Buffer.from([0x82, 0x81, 0, 0, 0, 0, 0x41])) // a masked binary frame
        await within(new Promise<void>((r) => s.once("close", () => r())), 3000, "the refused socket closed")
        const b = new RefBoard({ port: g.port, path: "/wssk/b1", key })
        await b.attempt()
        assert.deepEqual(b.events, ["refused 403"], "the gateway goes on")
    })

    it("a board's ping too long to echo and an exception report without a name end nothing", async function () {
        const key = randomBytes(32)
        const g = await gateway({ b1: key })
        const b = new RefBoard({ port: g.port, path: "/wssk/b1", key, program: image(256) })
        const session = g.want("b1")
        const attempt = b.attempt()
        const s = await within(session, 5000, "session")
        const reported = within(new Promise<string>((r) => g.once("exception", (_id: string, e: { name: string }) => r(e.name))), 3000, "the report")
        b.sendRaw(Buffer.concat([Buffer.from([Cmd.PingCloud]), Buffer.alloc(300)]))
        b.sendRaw(Buffer.concat([Buffer.from([Cmd.ExceptionReport]), Buffer.from("* Exception:\n")]))
        assert.equal(await reported, "(no name)")
        assert.equal(s.isOpen, true)
        s.close("test over")
        await attempt
    })

    it("one address holds at most a few sockets: a board from another address still gets its session", async function () {
        const key = randomBytes(32)
        const warnings: string[] = []
        const g = await gateway({ b1: key }, warnings)
        const refused = within(new Promise<void>((r) => g.on("warning", (w: { detail: string }) => /over 4 sockets from 127.0.0.2/.test(w.detail) && r())), 5000, "the fifth refused")
        for (let i = 0; i < 64; i++) {
            const x = connect({ port: g.port, host: "127.0.0.1", localAddress: "127.0.0.2" })
            x.on("error", () => undefined)
            onCleanup(() => void x.destroy())
        }
        await refused
        const b = new RefBoard({ port: g.port, path: "/wssk/b1", key, program: image(256) })
        const session = g.want("b1")
        const attempt = b.attempt()
        const s = await within(session, 5000, "the board's session")
        s.close("test over")
        await attempt
    })

    it(`cuts a peer that sends pings and does not read the pongs, past ${MAX_UNSENT_BYTES} bytes unsent; the gateway goes on`, async function () {
        this.timeout(60000)
        const key = randomBytes(32)
        const g = new OtaGateway({ port: 0, host: "127.0.0.1", keys: new Map([["b1", key]]), handshakeTimeout: 50000 })
        await g.listen()
        cleanup(g)
        let cut = ""
        g.on("warning", (w) => w.code === "slow-reader" && (cut = w.detail))
        void g.want("b1").catch(() => {})
        // Never read: no 'data' listener, so the socket stays paused.
        const s = connect({ port: g.port, host: "127.0.0.1" })
        s.on("error", () => undefined)
        onCleanup(() => void s.destroy())
        let closed = false
        s.on("close", () => (closed = true))
        s.write(`GET /wssk/b1 HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: devs-key-${"00".repeat(16)}\r\n\r\n`)
        const ping = Buffer.concat([Buffer.from([0x89, 0x80 | 125, 0, 0, 0, 0]), Buffer.alloc(125)])
        const batch = Buffer.concat(Array.from({ length: 500 }, () => ping))
        // Bounded: at most 256 MB, then the test fails below.
        for (let sent = 0; !closed && cut === "" && sent < 256 * 1024 * 1024; sent += batch.length)
            if (!s.write(batch)) await new Promise<void>((r) => (s.once("drain", r), s.once("close", r)))
        await until(() => cut !== "", 10000, "the slow-reader warning")
        assert.match(cut, new RegExp(`over ${MAX_UNSENT_BYTES} bytes unsent`))
        const b = new RefBoard({ port: g.port, path: "/wssk/b1", key, program: image(256) })
        const session = g.want("b1")
        const attempt = b.attempt()
        ;(await within(session, 5000, "the board's session")).close("test over")
        await attempt
    })

    it("refuses a request that is not a WebSocket upgrade with 400 and the reason", async function () {
        const g = await gateway({ b1: randomBytes(32) })
        const s = connect(g.port, "127.0.0.1")
        s.write("GET /wssk/b1 HTTP/1.1\r\nHost: x\r\n\r\n")
        let text = ""
        s.on("data", (d) => (text += d.toString()))
        await within(new Promise((r) => s.on("close", r)), 3000, "closed")
        assert.match(text, /^HTTP\/1.1 400 Bad Request/)
        assert.match(text, /missing 'Upgrade: websocket'/)
    })

    it("ignores deploy replies the board sends unasked: a board cannot start a deploy", async function () {
        const key = randomBytes(32)
        const g = await gateway({ b1: key })
        const b = new RefBoard({ port: g.port, path: "/wssk/b1", key, program: image(256) })
        const session = g.want("b1")
        keepTrying(b)
        const s = await within(session, 5000, "session")
        for (const c of [Cmd.DeployStart, Cmd.DeployWrite, Cmd.DeployFinish, Cmd.GetHash]) b.sendRaw(Buffer.from([c]))
        // A log line after them: once it is logged, they were handled.
        const logged = new Promise((r) => g.on("log", (id, _kind, text) => text === "marker" && r(id)))
        b.sendRaw(Buffer.concat([Buffer.from([Cmd.Dmesg]), Buffer.from("> marker\n")]))
        assert.equal(await within(logged, 3000, "marker logged"), "b1")
        const neu = image(512)
        const r = await s.execute(new DeployRun(neu), 5000)
        assert.equal(r.ok, true, r.error)
        assert.deepEqual(b.program, neu)
    })

    it(`logs a flooding board's console lines within a budget (${CONSOLE_LINES_LOGGED} a burst), counting the rest; the log event has every line`, async function () {
        const key = randomBytes(32)
        const records: Array<{ msg: string; console?: string; unlogged?: { console?: number } }> = []
        const logger = pino({ level: "info" }, { write: (s: string) => void records.push(JSON.parse(s)) })
        const g = cleanup(new OtaGateway({ port: 0, host: "127.0.0.1", keys: new Map([["b1", key]]), logger }))
        await g.listen()
        const b = new RefBoard({ port: g.port, path: "/wssk/b1", key, program: image(256) })
        const session = g.want("b1")
        keepTrying(b)
        const s = await within(session, 5000, "session")
        const N = 2000
        const t0 = performance.now()
        const last = new Promise((r) => g.on("log", (_id, _kind, text) => text === `line ${N - 1}` && r(text)))
        for (let i = 0; i < N; i += 10) {
            let chunk = ""
            for (let j = i; j < i + 10; j++) chunk += `> line ${j}\n`
            b.sendRaw(Buffer.concat([Buffer.from([Cmd.Dmesg]), Buffer.from(chunk)]))
        }
        await within(last, 10000, "the last line's log event")
        const seconds = (performance.now() - t0) / 1000
        s.close("test over")
        const logged = records.filter((r) => r.msg === "board console")
        // The bucket refills at CONSOLE_LINES_LOGGED per CONSOLE_LOG_PERIOD_MS: an upper bound, whatever the machine's speed.
        assert.ok(logged.length <= CONSOLE_LINES_LOGGED + 1 + (seconds * 1000 * CONSOLE_LINES_LOGGED) / CONSOLE_LOG_PERIOD_MS, `${logged.length} lines logged in ${seconds} s`)
        assert.equal(logged[0]!.console, "line 0")
        // Every line is either logged or counted: in a later logged line or at the session's end.
        const counted = records.reduce((n, r) => n + (r.unlogged?.console ?? 0), 0)
        assert.equal(logged.length + counted, N)
        assert.ok(records.some((r) => r.msg === "board console: lines over the budget not logged"))
    })

    it("parses the exception block from a report of the whole log", function () {
        const report = [
            "DevS-SHA256: " + "ab".repeat(32),
            "> prog v3 start",
            "! Unhandled exception",
            "DevS-SHA256: " + "cd".repeat(32),
            "* Exception: Error",
            "*  message: v3 boom",
            "*  at main_F0 (pc:28)",
            "! Unhandled exception",
            "WSSK-H: send cmd=0x9B",
        ].join("\n")
        assert.deepEqual(parseException(report), { name: "Error", message: "v3 boom", stack: ["at main_F0 (pc:28)"], program: "cd".repeat(32) })
    })
})

// A devs-iot server, an OTA gateway and a reference board whose program
// links up with the server only if it is `good`. `linkKey`: the board's link
// is keyed (and may also connect plain: --allow-plain).
async function otaBoard(good: Buffer, current: Buffer | undefined, o: { imagesDir?: string; linkKey?: string; linkUpWithin: number }) {
    const key = randomBytes(32)
    const port = await freePort()
    const keyed = o.linkKey ? { keys: { b1: o.linkKey }, allowPlain: ["b1"] } : {}
    const server = cleanup(new Server({ port, host: "127.0.0.1", timeout: 1000, ...keyed }))
    await server.listen()
    const g = await gateway({ b1: key })
    let link: Client | undefined = undefined
    const run = (img: Buffer | undefined) => {
        void link?.close()
        link = undefined
        if (img && img.equals(good)) link = new Client({ id: "b1", port, timeout: 1000, ...(o.linkKey ? { key: o.linkKey } : {}) }).start()
    }
    onCleanup(() => link?.close())
    const board = new RefBoard({ port: g.port, path: "/wssk/b1", key, program: current, onProgram: run })
    run(current)
    keepTrying(board)
    const ota = new Ota({ server, gateway: g, imagesDir: o.imagesDir, linkUpWithin: o.linkUpWithin, sessionWithin: 5000, deployWithin: 10000 })
    return { server, port, board, ota }
}

describe("OTA deploy with rollback (devs-iot server, reference board)", function () {
    this.timeout(40000)
    const LINK_UP_WITHIN = 8000
    afterEach(closeAll)

    // The deadline a good program's link must meet: generous, so a loaded
    // machine does not turn a good deploy into a rollback.
    const setup = (good: Buffer, current: Buffer, imagesDir?: string) => otaBoard(good, current, { imagesDir, linkUpWithin: LINK_UP_WITHIN })

    it("deploys a program that links up, and rolls back one that does not", async function () {
        const v1 = image(1184), v2 = image(2048), bad = image(640)
        const { board, ota } = await setup(v2, v1)
        // v1 is not in the store yet: nothing is written.
        const refused = await ota.deploy(["b1"], v2, "test")
        assert.equal(refused.boards[0]!.outcome, "refused")
        assert.match(refused.boards[0]!.detail, /not in the image store/)
        assert.deepEqual(board.program, v1)

        ota.keep(v1)
        const ok = await ota.deploy(["b1"], v2, "test")
        assert.equal(ok.boards[0]!.outcome, "deployed", ok.boards[0]!.detail)
        assert.equal(ok.boards[0]!.before, sha256(v1).toString("hex"))
        assert.equal(ok.boards[0]!.after, sha256(v2).toString("hex"))
        assert.equal(ok.who, "test")

        const back = await ota.deploy(["b1"], bad, "test")
        assert.equal(back.boards[0]!.outcome, "rolled-back", back.boards[0]!.detail)
        assert.match(back.boards[0]!.detail, new RegExp(`did not bring its link up within ${LINK_UP_WITHIN} ms; previous program back, link up`))
        assert.deepEqual(board.program, v2)

        const same = await ota.deploy(["b1"], v2, "test")
        assert.equal(same.boards[0]!.outcome, "unchanged")
    })
})

describe("OTA deploy: one at a time per board, and only the board's own link counts", function () {
    this.timeout(40000)
    afterEach(closeAll)

    async function setupBoard(good: Buffer, current: Buffer | undefined, linkKey?: string) {
        const b = await otaBoard(good, current, { linkKey, linkUpWithin: 3000 })
        if (current) b.ota.keep(current)
        return b
    }

    const written = async (board: RefBoard, img: Buffer) => {
        await until(() => board.program?.equals(img) === true, 10000, "the image on the board")
    }

    it("a second deploy to a board is refused while the first waits for the new program's link and rolls back", async function () {
        const v1 = image(1184), bad = image(640), v3 = image(2048)
        const { board, ota } = await setupBoard(v1, v1)
        const first = ota.deploy(["b1"], bad, "a")
        await written(board, bad)
        await board.waitEvent(/refused 403/, 10000) // its session is over, nothing pending: it waits for the link now
        await assert.rejects(ota.deploy(["b1"], v3, "b"), /a deploy to "b1" is already running/)
        const r = await first
        assert.equal(r.boards[0]!.outcome, "rolled-back", r.boards[0]!.detail)
        assert.deepEqual(board.program, v1)
    })

    it("a board named twice in one request is refused before anything is written: between its two runs another deploy could start on it", async function () {
        const v1 = image(1184), v2 = image(2048)
        const { board, ota } = await setupBoard(v1, v1)
        await assert.rejects(ota.deploy(["b1", "b1"], v2, "a"), /board id "b1" given twice/)
        assert.deepEqual(board.program, v1)
        assert.ok(!board.events.includes("deploy_start"))
    })

    it("a board that drops its session in the middle of the write gets its previous program back", async function () {
        const v1 = image(1184), v2 = image(45792)
        const { board, ota } = await setupBoard(v2, v1)
        board.opts.dropAfterWrites = 3 // mid-transfer: the old program is gone, the new one incomplete
        const r = await ota.deploy(["b1"], v2, "a")
        assert.equal(r.boards[0]!.outcome, "rolled-back", r.boards[0]!.detail)
        assert.match(r.boards[0]!.detail, /deploy failed: session ended during deploy_write at byte \d+: connection closed; previous program back/)
        assert.deepEqual(board.program, v1)
    })

    it("a board that drops each session at deploy_start, before it answers, is not reported 'refused': it may have erased its program, and gets the previous one back", async function () {
        const v1 = image(1184), v2 = image(2048)
        const { board, ota } = await setupBoard(v1, v1)
        board.opts.dropAtStartOf = v2.length
        const r = await ota.deploy(["b1"], v2, "a")
        assert.equal(r.boards[0]!.outcome, "rolled-back", r.boards[0]!.detail)
        assert.match(r.boards[0]!.detail, /deploy failed: session ended during deploy_start: connection closed; previous program back, link up/)
        assert.deepEqual(board.program, v1)
    })

    it("a board with no program (its hash all zeros) can be deployed to: there is nothing a rollback could lose", async function () {
        const v1 = image(1024)
        const { board, ota } = await setupBoard(v1, undefined)
        const r = await ota.deploy(["b1"], v1, "a")
        assert.equal(r.boards[0]!.outcome, "deployed", r.boards[0]!.detail)
        assert.equal(r.boards[0]!.before, "0".repeat(64))
        assert.deepEqual(board.program, v1)
    })

    it("a keyed board: a plain connection with its id (--allow-plain) does not count as its new program's link", async function () {
        const linkKey = "3c".repeat(32)
        const v1 = image(1184), bad = image(640)
        const { port, board, ota } = await setupBoard(v1, v1, linkKey)
        const deploy = ota.deploy(["b1"], bad, "a")
        await written(board, bad)
        const stranger = cleanup(new Client({ id: "b1", port, timeout: 1000 }).start())
        await within(stranger.connected(), 5000, "the stranger's plain link up")
        const r = await deploy
        assert.equal(r.boards[0]!.outcome, "rolled-back", r.boards[0]!.detail)
        assert.deepEqual(board.program, v1)
    })
})

// What an Ota holds, for the tests of its bounds.
const held = (o: Ota) => o as unknown as { images: Map<string, Buffer>; files: Map<string, string>; lastConnect: Map<string, number> }

describe("OTA image store", function () {
    this.timeout(30000)
    afterEach(closeAll)

    it(`holds at most ${MAX_IMAGES_IN_MEMORY} images in memory besides those the boards run, and link times only of boards being deployed to`, async function () {
        const v1 = image(1184), v2 = image(2048), bad = image(640)
        const { ota } = await otaBoard(v2, v1, { linkUpWithin: 3000 })
        ota.keep(v1)
        const r = await ota.deploy(["b1"], v2, "test")
        assert.equal(r.boards[0]!.outcome, "deployed", r.boards[0]!.detail)
        assert.equal(held(ota).lastConnect.size, 0, "the link time of a board no deploy waits for")
        const others = Array.from({ length: MAX_IMAGES_IN_MEMORY + 2 }, (_, i) => image(256 + 32 * i))
        for (const o of others) ota.keep(o)
        const kept = [...held(ota).images.keys()]
        const hex = (b: Buffer) => sha256(b).toString("hex")
        assert.deepEqual(kept.sort(), [hex(v2), ...others.slice(-MAX_IMAGES_IN_MEMORY).map(hex)].sort(), "v2 (b1 runs it) and the most recent others")
        // The image b1 runs was kept: a broken deploy can still be rolled back.
        const back = await ota.deploy(["b1"], bad, "test")
        assert.equal(back.boards[0]!.outcome, "rolled-back", back.boards[0]!.detail)
        assert.equal(held(ota).lastConnect.size, 0)
    })

    it("with an image folder, holds no image in memory: only the folder's index", async function () {
        const port = await freePort()
        const server = cleanup(new Server({ port, host: "127.0.0.1", timeout: 1000 }))
        await server.listen()
        const dir = mkdtempSync(join(tmpdir(), "ota-images-"))
        const ota = new Ota({ server, gateway: await gateway({ b1: randomBytes(32) }), imagesDir: dir })
        for (let i = 0; i < 3; i++) ota.keep(image(256 + 32 * i))
        assert.equal(held(ota).images.size, 0)
        assert.equal(held(ota).files.size, 3)
    })

    it("skips a FIFO in the image folder with a warning, never reading it (a read would block the process)", async function () {
        if (process.platform === "win32") this.skip()
        const port = await freePort()
        const server = cleanup(new Server({ port, host: "127.0.0.1", timeout: 1000 }))
        await server.listen()
        const dir = mkdtempSync(join(tmpdir(), "ota-images-"))
        const fifo = join(dir, "pipe.devs")
        execFileSync("mkfifo", [fifo])
        // A writer, so that a read of the FIFO would end (with an image) instead of hanging the test.
        const src = join(mkdtempSync(join(tmpdir(), "ota-src-")), "v.devs")
        writeFileSync(src, image(256))
        const writer = spawn("sh", ["-c", 'cat "$0" > "$1"', src, fifo], { stdio: "ignore" })
        onCleanup(() => void (writer.exitCode === null && writer.pid !== undefined && process.kill(writer.pid, "SIGKILL")))
        const logged: Array<{ msg?: string; file?: string }> = []
        const logger = pino({ level: "info" }, { write: (s: string) => void logged.push(JSON.parse(s)) })
        const ota = new Ota({ server, gateway: await gateway({ b1: randomBytes(32) }), imagesDir: dir, logger })
        assert.ok(logged.some((r) => r.file === fifo && r.msg === "not an image: not a regular file"), JSON.stringify(logged))
        assert.equal(held(ota).files.size, 0)
    })

    it("finds an image put in the folder after the server started", async function () {
        const key = randomBytes(32)
        const port = await freePort()
        const server = cleanup(new Server({ port, host: "127.0.0.1", timeout: 1000 }))
        await server.listen()
        const g = await gateway({ b1: key })
        const dir = mkdtempSync(join(tmpdir(), "ota-images-"))
        const ota = new Ota({ server, gateway: g, imagesDir: dir, linkUpWithin: 2000, sessionWithin: 5000 })
        const v1 = image(256), v2 = image(512)
        const board = new RefBoard({ port: g.port, path: "/wssk/b1", key, program: v1 })
        keepTrying(board)
        cleanup(new Client({ id: "b1", port, timeout: 1000 }).start())
        writeFileSync(join(dir, "flashed.devs"), v1) // the operator adds the flashed image now
        const r = await ota.deploy(["b1"], v2, "test")
        assert.equal(r.boards[0]!.outcome, "deployed", r.boards[0]!.detail)
        assert.deepEqual(board.program, v2)
    })
})

describe("OTA requests: devs-iot deploy over an authenticated admin link", function () {
    this.timeout(30000)
    afterEach(closeAll)

    it("deploys for an authenticated admin, from the command line and as a call of the package; refuses an admin link that is not authenticated; logs who, what hash, which boards and the outcome", async function () {
        const boardKey = randomBytes(32), adminKey = randomBytes(32)
        const port = await freePort()
        const server = cleanup(new Server({ port, host: "127.0.0.1", timeout: 1000, keys: { ops: adminKey, lax: randomBytes(32) }, allowPlain: ["lax"] }))
        await server.listen()
        const g = await gateway({ b1: boardKey })
        const logged: Array<{ msg?: string; who?: string; sha256?: string; boards?: string[] }> = []
        const logger = pino({ level: "info" }, { write: (s: string) => void logged.push(JSON.parse(s)) })
        const ota = new Ota({ server, gateway: g, linkUpWithin: 2000, sessionWithin: 5000, logger })
        attachAdmins(server, ota, ["ops", "lax"])
        const v1 = image(256), v2 = image(1024)
        ota.keep(v1)
        const board = new RefBoard({ port: g.port, path: "/wssk/b1", key: boardKey, program: v1 })
        keepTrying(board)
        const link = cleanup(new Client({ id: "b1", port, timeout: 1000 }).start()) // the program's link, always up here
        await within(server.clientConn("b1"), 5000, "board link")

        // "lax" is keyed but allowed plain: its unauthenticated link gets an error, nothing is deployed.
        const plain = cleanup(new Client({ id: "lax", port, timeout: 1000 }).start())
        await assert.rejects(requestDeploy(plain, ["b1"], v2), /must authenticate/)
        assert.deepEqual(board.program, v1)

        // The command line, as an operator runs it.
        const file = join(mkdtempSync(join(tmpdir(), "ota-")), "app.devs")
        writeFileSync(file, v2)
        const run = cli(["deploy", "--id", "b1", "--port", String(port), "--admin", "ops", "--log-level", "warn", file], { DEVS_IOT_KEY: adminKey.toString("hex") })
        onCleanup(() => run.stop())
        const code = await within(run.exited, 20000, "devs-iot deploy exits")
        assert.equal(code, 0, run.stdout + run.stderr)
        const report = JSON.parse(run.stdout)
        assert.equal(report.who, "ops")
        assert.equal(report.sha256, sha256(v2).toString("hex"))
        assert.deepEqual(report.boards.map((b: { id: string; outcome: string }) => [b.id, b.outcome]), [["b1", "deployed"]])
        assert.deepEqual(board.program, v2)

        // The same as a call of the package, on the admin's own Client: back to v1.
        const admin = cleanup(new Client({ id: "ops", port, timeout: 1000, key: adminKey.toString("hex") }).start())
        const api: DeployReport = await within(requestDeploy(admin, ["b1"], v1), 20000, "requestDeploy's report")
        assert.equal(api.who, "ops")
        assert.equal(api.sha256, sha256(v1).toString("hex"))
        assert.deepEqual(api.boards.map((b) => [b.id, b.outcome, b.before, b.after]), [["b1", "deployed", sha256(v2).toString("hex"), sha256(v1).toString("hex")]])
        assert.deepEqual(board.program, v1)

        // Every deploy in the server's log: who asked, the hash, the boards, then each board's outcome.
        const requested = logged.filter((r) => r.msg === "OTA deploy requested")
        const done = logged.filter((r) => r.msg === "OTA deploy done")
        assert.deepEqual(requested.map((r) => [r.who, r.sha256, r.boards]), [["ops", sha256(v2).toString("hex"), ["b1"]], ["ops", sha256(v1).toString("hex"), ["b1"]]])
        assert.deepEqual(done.map((r) => [r.who, r.sha256, r.boards]), [["ops", sha256(v2).toString("hex"), ["b1:deployed"]], ["ops", sha256(v1).toString("hex"), ["b1:deployed"]]])
        void link
    })
})

describe("OTA requests that cannot be served end with an error, not silence", function () {
    this.timeout(30000)
    afterEach(closeAll)

    // A key file with the admin "ops" (and the board "b1"), an OTA key file
    // for "b1", and an image file for `devs-iot deploy`.
    function files() {
        const dir = mkdtempSync(join(tmpdir(), "ota-req-"))
        const adminKey = randomBytes(32).toString("hex")
        writeFileSync(join(dir, "keys.txt"), `ops ${adminKey}\nb1 ${randomBytes(32).toString("hex")}\n`)
        writeFileSync(join(dir, "ota.txt"), `b1 ${randomBytes(32).toString("hex")}\n`)
        writeFileSync(join(dir, "app.devs"), image(1024))
        return { dir, adminKey, keys: join(dir, "keys.txt"), ota: join(dir, "ota.txt"), image: join(dir, "app.devs") }
    }

    async function serverCli(args: string[]) {
        const port = await freePort()
        const s = cli(["server", "--port", String(port), "--host", "127.0.0.1", ...args])
        onCleanup(() => s.stop())
        await s.waitFor(/ready/, 10000)
        return { s, port }
    }

    it("a server run without --ota-keys answers a deploy request with 'over-the-air updates are off on this server', and logs it; devs-iot deploy prints it and exits 1", async function () {
        const f = files()
        const { s, port } = await serverCli(["--keys", f.keys])
        const run = cli(["deploy", "--id", "b1", "--port", String(port), "--admin", "ops", "--log-level", "warn", f.image], { DEVS_IOT_KEY: f.adminKey })
        onCleanup(() => run.stop())
        assert.equal(await within(run.exited, 15000, "devs-iot deploy exits"), 1, run.stdout + run.stderr)
        assert.match(run.stderr, /over-the-air updates are off on this server/)
        assert.equal(run.stdout, "")
        await s.waitFor(/OTA request from ops refused: over-the-air updates are off on this server/, 5000)
    })

    it("devs-iot deploy takes the admin's key from --key-file or DEVS_IOT_KEY_FILE; a missing file, a key given twice or none exits 2 naming it", async function () {
        const f = files()
        const { port } = await serverCli(["--keys", f.keys])
        const keyFile = join(f.dir, "ops.key")
        writeFileSync(keyFile, `# the admin's key\n${f.adminKey}\n`, { mode: 0o600 })
        const deploy = (args: string[], env: Record<string, string>) => {
            const run = cli(["deploy", "--id", "b1", "--port", String(port), "--admin", "ops", "--log-level", "warn", ...args, f.image], env)
            onCleanup(() => run.stop())
            return run
        }
        for (const [args, env] of [[["--key-file", keyFile], {}], [[], { DEVS_IOT_KEY_FILE: keyFile }]] as const) {
            const run = deploy([...args], env)
            // The server's answer comes only over an authenticated link: the key was read.
            assert.equal(await within(run.exited, 15000, "devs-iot deploy exits"), 1, run.stdout + run.stderr)
            assert.match(run.stderr, /over-the-air updates are off on this server/)
            assert.doesNotMatch(run.stderr, /visible to every user|accessible to other users/)
            assert.ok(!run.stderr.includes(f.adminKey))
        }
        for (const [args, env, re] of [
            [["--key-file", join(f.dir, "nothing.key")], {}, /nothing\.key: cannot read the key file: ENOENT/],
            [["--key-file", keyFile], { DEVS_IOT_KEY: f.adminKey }, /give the key once: DEVS_IOT_KEY or --key-file, not both/],
            [[], {}, /the admin id's key is required: --key-file FILE/],
        ] as const) {
            const run = deploy([...args], env)
            assert.equal(await within(run.exited, 15000, "devs-iot deploy exits"), 2, run.stdout + run.stderr)
            assert.match(run.stderr, re)
        }
    })

    it("through a server run with --ota-keys and its default app (none), deploy gets the server's report: the app does not take the admin's lines", async function () {
        const f = files()
        const { port } = await serverCli(["--keys", f.keys, "--ota-keys", f.ota, "--ota-admins", "ops", "--ota-port", "0", "--ota-session-within", "1000"])
        const run = cli(["deploy", "--id", "b1", "--port", String(port), "--admin", "ops", "--log-level", "warn", f.image], { DEVS_IOT_KEY: f.adminKey })
        onCleanup(() => run.stop())
        // No board opens a session: the report says so, and deploy exits 1.
        assert.equal(await within(run.exited, 15000, "devs-iot deploy exits"), 1, run.stdout + run.stderr)
        const report = JSON.parse(run.stdout)
        assert.deepEqual(report.boards.map((b: { id: string; outcome: string }) => [b.id, b.outcome]), [["b1", "refused"]])
        assert.match(report.boards[0].detail, /did not open an OTA session within 1000 ms/)
    })

    it("a deploy request from an id that is not an OTA admin is refused by name, and its image never reaches the application", async function () {
        const adminKey = randomBytes(32), otherKey = randomBytes(32)
        const port = await freePort()
        const server = cleanup(new Server({ port, host: "127.0.0.1", timeout: 1000, keys: { ops: adminKey, other: otherKey } }))
        await server.listen()
        const ota = new Ota({ server, gateway: await gateway({ b1: randomBytes(32) }), sessionWithin: 1000 })
        attachAdmins(server, ota, ["ops"])
        const other = cleanup(new Client({ id: "other", port, timeout: 1000, key: otherKey.toString("hex") }).start())
        const conn = await within(server.clientConn("other"), 5000, "other's link")
        await assert.rejects(within(requestDeploy(other, ["b1"], image(8000)), 10000, "requestDeploy's answer"), /server: "other" is not an OTA admin of this server/)
        // The application reads the id's own lines, none of the request's.
        await other.write("hello")
        assert.equal(await within(conn.readline(), 5000, "the application's line"), "hello")
    })

    it(`an admin that sends more than ${MAX_QUEUED_CHARS} bytes while its deploy runs gets an error naming the limit; the deploy, the server and other links go on`, async function () {
        const adminKey = randomBytes(32)
        const port = await freePort()
        const server = cleanup(new Server({ port, host: "127.0.0.1", timeout: 1000, keys: { ops: adminKey } }))
        await server.listen()
        let requested: () => void = () => {}
        const running = new Promise<void>((r) => (requested = r))
        const logger = pino({ level: "info" }, { write: (s: string) => void (JSON.parse(s).msg === "OTA deploy requested" && requested()) })
        const ota = new Ota({ server, gateway: await gateway({ b1: randomBytes(32) }), sessionWithin: 4000, logger })
        attachAdmins(server, ota, ["ops"])
        const admin = cleanup(new Client({ id: "ops", port, timeout: 1000, key: adminKey.toString("hex") }).start())
        const first = requestDeploy(admin, ["b1"], image(1024))
        await within(running, 5000, "the deploy running")
        // No board comes: the deploy waits for its session while the admin sends parts of nothing.
        const refused = assert.rejects(within(first, 10000, "the error"), new RegExp(`request lines dropped: over ${MAX_QUEUED_CHARS} bytes \\(one whole request\\) held while a deploy runs`))
        const part = JSON.stringify({ ota: "part", data: "A".repeat(4000) })
        for (let sent = 0; sent <= MAX_QUEUED_CHARS + 20000; sent += part.length) await admin.write(part)
        await refused
        const other = cleanup(new Client({ id: "other", port, timeout: 1000 }).start())
        const conn = await within(server.clientConn("other"), 5000, "another link")
        await other.write("hello")
        assert.equal(await within(conn.readline(), 5000, "its line"), "hello")
        // The deploy ends as it would have, and its report comes.
        const report = JSON.parse(await within(admin.readline(), 10000, "the report")) as DeployReport & { ota: string }
        assert.equal(report.ota, "report")
        assert.match(report.boards[0]!.detail, /did not open an OTA session/)
    })

    it("each malformed request line gets an error naming what is wrong, and the admin's next request is served", async function () {
        const admin = await adminOfOneBoard()
        const hash = sha256(image(1024)).toString("hex")
        const head = (o: object) => JSON.stringify({ ota: "deploy", ids: ["b1"], sha256: hash, bytes: 1024, parts: 1, ...o })
        for (const [lines, re] of [
            [["null"], /^not a JSON object: null$/],
            [["{"], /^not JSON$/],
            [[head({ ids: "b1" })], /^deploy request: ids must be a list of board ids/],
            [[head({ sha256: "x" })], /^deploy request: sha256 must be 64 lower-case hex digits$/],
            [[head({ bytes: 600000 })], /^deploy request: bytes must be a whole number from 1 to 524288 \(the largest image\), got 600000$/],
            [[head({ parts: 0 })], /^deploy request: parts must be a whole number from 1 to 171, got 0$/],
            [[head({}), "[1]"], /^part 0: not a JSON object: \[1\]$/],
            [[head({}), JSON.stringify({ ota: "part", data: image(1024).toString("base64") })], /^the image does not match its sha256$/],
        ] as const) {
            for (const l of lines) await admin.write(l)
            const answer = JSON.parse(await within(admin.readline(), 5000, `the answer to ${lines[0]}`)) as { ota: string; message: string }
            assert.equal(answer.ota, "error")
            assert.match(answer.message, re)
        }
        // Still served: no board comes, so the report says so.
        const r = await within(requestDeploy(admin, ["b1"], image(1024)), 10000, "the report")
        assert.match(r.boards[0]!.detail, /did not open an OTA session within 1000 ms/)
    })

    it("two requestDeploy calls at once on one Client each get their own report: the second waits for the first", async function () {
        const admin = await adminOfOneBoard()
        const a = image(7168), b = image(5120) // 3 parts and 2: their lines would interleave
        const [ra, rb] = await within(Promise.all([requestDeploy(admin, ["b1"], a), requestDeploy(admin, ["b1"], b)]), 15000, "both reports")
        assert.equal(ra.sha256, sha256(a).toString("hex"))
        assert.equal(rb.sha256, sha256(b).toString("hex"))
        for (const r of [ra, rb]) assert.match(r.boards[0]!.detail, /did not open an OTA session within 1000 ms/)
    })

    it("a request answered with an error is answered once: its parts left unread get no answers, which the admin's next request would read as its own", async function () {
        const admin = await adminOfOneBoard()
        const img = image(9216) // 3 parts
        const part = (i: number) => JSON.stringify({ ota: "part", data: img.subarray(i * 3072, (i + 1) * 3072).toString("base64") })
        // Bytes over the limit: refused at the head, its 3 parts follow. Then a bad first part, 2 good ones after it.
        await admin.write(JSON.stringify({ ota: "deploy", ids: ["b1"], sha256: sha256(img).toString("hex"), bytes: 600000, parts: 3 }))
        for (let i = 0; i < 3; i++) await admin.write(part(i))
        assert.match(JSON.parse(await within(admin.readline(), 5000, "the error")).message, /bytes must be a whole number/)
        await admin.write(JSON.stringify({ ota: "deploy", ids: ["b1"], sha256: sha256(img).toString("hex"), bytes: 9216, parts: 3 }))
        await admin.write("{}")
        for (let i = 1; i < 3; i++) await admin.write(part(i))
        assert.match(JSON.parse(await within(admin.readline(), 5000, "the error")).message, /^part 0: expected/)
        // The next request gets its own answer (its report), no error left over from those.
        const r = await within(requestDeploy(admin, ["b1"], img), 10000, "the report")
        assert.match(r.boards[0]!.detail, /did not open an OTA session within 1000 ms/)
    })

    it("devs-iot deploy names an image file it cannot use before it connects: missing, a folder, over the limit, not an image", async function () {
        const dir = mkdtempSync(join(tmpdir(), "ota-img-"))
        writeFileSync(join(dir, "big.devs"), Buffer.alloc(600000))
        writeFileSync(join(dir, "text.devs"), "hello, world\n".repeat(20))
        const port = await freePort() // nothing listens: the file is refused first
        for (const [file, re] of [
            [join(dir, "none.devs"), /none\.devs: cannot deploy: ENOENT/],
            [dir, /cannot deploy: not a regular file/],
            [join(dir, "big.devs"), /big\.devs: cannot deploy: 600000 bytes is over 524288, the largest image/],
            [join(dir, "text.devs"), /text\.devs: not a DeviceScript image/],
        ] as const) {
            const run = cli(["deploy", "--id", "b1", "--port", String(port), "--admin", "ops", file], { DEVS_IOT_KEY: randomBytes(32).toString("hex") })
            onCleanup(() => run.stop())
            assert.equal(await within(run.exited, 15000, "devs-iot deploy exits"), 2, run.stdout + run.stderr)
            assert.match(run.stderr, re)
        }
        // The package's call names a bad image before it sends a line.
        const never = new Client({ id: "ops", port, timeout: 1000 })
        await assert.rejects(requestDeploy(never, ["b1"], Buffer.from("hello")), /image: 5 bytes is too short for a DeviceScript image/)
    })

    it("a peer that sends deploy requests it may not make gets each refused, and the log takes at most maxWarningsPerSecond of them a second", async function () {
        const port = await freePort()
        const server = cleanup(new Server({ port, host: "127.0.0.1", timeout: 1000, limits: { maxWarningsPerSecond: 5 } }))
        await server.listen()
        const logged: Array<{ msg?: string; unlogged?: Record<string, number> }> = []
        refuseDeploys(server, "off here", pino({ level: "info" }, { write: (s: string) => void logged.push(JSON.parse(s)) }))
        const peer = cleanup(new Client({ id: "anyone", port, timeout: 1000 }).start())
        await within(peer.connected(), 5000, "the peer's link")
        const started = performance.now()
        const n = 60
        for (let i = 0; i < n; i++) await peer.write(JSON.stringify({ ota: "deploy", i }))
        for (let i = 0; i < n; i++) assert.match(await within(peer.readline(), 5000, `answer ${i}`), /"message":"off here"/)
        const seconds = (performance.now() - started) / 1000
        const refused = logged.filter((r) => /OTA request from anyone refused: off here/.test(r.msg ?? ""))
        assert.ok(refused.length <= 5 + Math.ceil(seconds * 5) + 1, `${refused.length} logged in ${seconds.toFixed(1)} s`)
    })

    it("devs-iot deploy gives up after --report-within ms when the server never answers, exits 1 and says so", async function () {
        const f = files()
        const port = await freePort()
        // A server of the package with the admin's key, and nothing that serves OTA requests.
        const server = cleanup(new Server({ port, host: "127.0.0.1", keys: { ops: f.adminKey } }))
        await server.listen()
        const started = performance.now()
        const run = cli(["deploy", "--id", "b1", "--port", String(port), "--admin", "ops", "--report-within", "2000", "--log-level", "warn", f.image], { DEVS_IOT_KEY: f.adminKey })
        onCleanup(() => run.stop())
        assert.equal(await within(run.exited, 15000, "devs-iot deploy exits"), 1, run.stdout + run.stderr)
        assert.ok(performance.now() - started >= 2000, "not before the bound")
        assert.match(run.stderr, /no answer from the server within 2000 ms \(--report-within\)/)
    })
})

describe("OTA server options", function () {
    this.timeout(30000)
    afterEach(closeAll)

    it("a wait longer than Node's timers hold (2^31 - 1 ms, run after 1 ms), or not a whole number, is refused, not a board cut at once", function () {
        const keys = new Map([["b1", randomBytes(32)]])
        for (const o of [{ idleTimeout: 2 ** 31 }, { handshakeTimeout: 2 ** 31 }, { idleTimeout: -1 }, { maxSockets: 0.5 }])
            assert.throws(() => new OtaGateway({ keys, ...o }), { code: "ECONFIG" }, JSON.stringify(o))
        const server = new Server({ port: 0 })
        const gateway = new OtaGateway({ keys, idleTimeout: 3600000 })
        for (const o of [{ linkUpWithin: 2 ** 31 }, { sessionWithin: 2 ** 31 }, { deployWithin: 2 ** 31 }, { sessionWithin: Number.NaN }])
            assert.throws(() => new Ota({ server, gateway, ...o }), { code: "ECONFIG" }, JSON.stringify(o))
    })

    it("refuses an admin without a link key, an admin that is also a board, --ota-* without --ota-keys, and an image folder that is a file", async function () {
        const dir = mkdtempSync(join(tmpdir(), "ota-cfg-"))
        const k = () => randomBytes(32).toString("hex")
        writeFileSync(join(dir, "keys.txt"), `ops ${k()}\nb1 ${k()}\n`)
        writeFileSync(join(dir, "ota.txt"), `b1 ${k()}\n`)
        for (const [args, re] of [
            [["--keys", join(dir, "keys.txt"), "--ota-keys", join(dir, "ota.txt"), "--ota-admins", "nobody"], /"nobody" has no key in --keys/],
            [["--keys", join(dir, "keys.txt"), "--ota-keys", join(dir, "ota.txt"), "--ota-admins", "b1"], /"b1" is also a board in --ota-keys/],
            [["--ota-port", "9"], /--ota-port needs --ota-keys/],
            [["--keys", join(dir, "keys.txt"), "--ota-keys", join(dir, "ota.txt"), "--ota-admins", "ops", "--ota-images", join(dir, "keys.txt")], /--ota-images .*keys\.txt: cannot use it as the image folder: EEXIST/],
        ] as const) {
            const run = cli(["server", "--port", "0", "--ota-port", "0", ...args])
            onCleanup(() => run.stop())
            assert.equal(await within(run.exited, 20000, "server exits"), 2, run.stderr)
            assert.match(run.stderr, re)
        }
    })

    it("refuses an --ota-keys line that says more than one key (a second key, 'encrypt', 'revoked', 'open'), naming file:line, instead of ignoring it", async function () {
        const dir = mkdtempSync(join(tmpdir(), "ota-keys-"))
        const k = () => randomBytes(32).toString("hex")
        writeFileSync(join(dir, "keys.txt"), `ops ${k()}\nb1 ${k()}\n`)
        for (const [line, re] of [
            [`b2 ${k()} ${k()}`, /ota\.txt:2: id "b2": a second key \(a rotation\) is not supported in --ota-keys/],
            [`b2 ${k()} encrypt`, /ota\.txt:2: id "b2": 'encrypt' is not supported in --ota-keys/],
            ["b2 revoked", /ota\.txt:2: id "b2": 'revoked' lines are not supported in --ota-keys/],
            ["b2 open", /ota\.txt:2: id "b2": 'open' lines are not supported in --ota-keys/],
        ] as const) {
            writeFileSync(join(dir, "ota.txt"), `b1 ${k()}\n${line}\n`)
            const run = cli(["server", "--port", "0", "--ota-port", "0", "--keys", join(dir, "keys.txt"), "--ota-keys", join(dir, "ota.txt"), "--ota-admins", "ops"])
            onCleanup(() => run.stop())
            assert.equal(await within(run.exited, 20000, "server exits"), 2, `${line.slice(0, 3)}: ${run.stderr}`)
            assert.match(run.stderr, re)
        }
    })
})
