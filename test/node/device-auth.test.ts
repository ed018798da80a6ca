// Authentication on the board: the real firmware in the DeviceScript simulator, with
// a key (IOT_KEY) and encryption (IOT_ENCRYPT), against the Node server with
// the same key, through an on-path proxy that records the wire.
import assert from "node:assert/strict"
import { Server, type Warning } from "../../src/server/index.js"
import { buildSimImage, runSim, type SimImage, type SimRun } from "../../src/server/cli/sim.js"
import { Mitm } from "../kit/mitm.js"
import { freePort, until, within } from "../kit/util.js"

const TIMEOUT = 1000
const KEY = "3c".repeat(32)
const NEXT = "4d".repeat(32)
const THIRD = "5e".repeat(32)

describe("board firmware with a key, in the DeviceScript simulator", function () {
    this.timeout(120000)
    let serverPort = 0
    let mitmPort = 0
    let img: SimImage | undefined
    let next: SimImage | undefined
    let vm: SimRun | undefined
    let server: Server | undefined
    let mitm: Mitm | undefined

    before(async function () {
        this.timeout(300000)
        serverPort = await freePort()
        mitmPort = await freePort()
        img = await buildSimImage({ app: "testbed", id: "kb1", host: "127.0.0.1", port: mitmPort, timeout: TIMEOUT, verbose: true, key: KEY, encrypt: true })
    })

    after(async function () {
        await vm?.stop()
        await mitm?.close()
        await server?.close()
        img?.remove()
        next?.remove()
    })

    it("authenticates, exchanges qos lines both ways, every line sealed and payloads encrypted both ways", async function () {
        server = new Server({ port: serverPort, host: "127.0.0.1", timeout: TIMEOUT, keys: { kb1: KEY }, encrypt: true })
        const warnings: Warning[] = []
        server.on("warning", (w) => warnings.push(w))
        await server.listen()
        mitm = new Mitm(serverPort)
        let wire = ""
        mitm.rewrite = (l, dir) => {
            wire += (dir === "up" ? ">" : "<") + l.toString() + "\n"
            return [l]
        }
        await mitm.listen(mitmPort)
        const t0 = performance.now()
        vm = await runSim(img!.image)
        const conn = await within(server.clientConn("kb1"), 30000, "board connected")
        await vm.waitFor(/link up \(server speaks devs-iot/, 5000)
        const handshake = performance.now() - t0
        const got: string[] = []
        for (let i = 0; i < 10; i++) {
            await within(conn.write(`secret-${i}`), 5000, `write ${i}`)
            got.push(await within(conn.readline(), 5000, `echo ${i}`))
        }
        assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => `secret-${i}`))
        await conn.write(JSON.stringify({ cmd: "send", n: 20, prefix: "b" }))
        const lines: string[] = []
        while (lines.length < 21) lines.push(await within(conn.readline(), 10000, `line ${lines.length}`))
        assert.deepEqual(lines.slice(0, 20), Array.from({ length: 20 }, (_, i) => `b${i}`))
        assert.deepEqual(JSON.parse(lines[20]!), { sent: 20, failed: 0 })
        assert.deepEqual(warnings, [])
        assert.ok(!wire.includes("secret"), "no payload in clear")
        assert.ok(wire.includes("\n>!e") && wire.includes("\n<!e"), "encrypted lines both ways")
        const after = wire.slice(wire.indexOf("<!auth mac="))
        for (const l of after.split("\n").slice(1)) if (l !== "") assert.match(l, /^[<>]!(m|e)[0-9a-f]{8}/, "sealed: " + l)
        this.test!.title += ` (simulator start to link up ${(handshake / 1000).toFixed(1)} s)`
    })

    it("encrypted lines of 2,000 and 2,048 bytes (the board's limit) go both ways without crashing the board; 2,049 rejects at once with ETOOLONG naming the board's limit", async function () {
        const conn = server!.connection("kb1")!
        for (const n of [2000, 2048]) {
            const line = "e".repeat(n)
            await within(conn.write(line), 10000, `${n} bytes to the board`)
            assert.equal(await within(conn.readline(), 10000, `echo of ${n} bytes`), line)
        }
        await assert.rejects(within(conn.write("e".repeat(2049)), 5000, "write of 2,049 bytes"), (e: Error & { code?: string }) => e.code === "ETOOLONG" && /peer's limit \(2048/.test(e.message))
        assert.equal(await within(conn.write("next").then(() => conn.readline()), 10000, "the next line"), "next")
        assert.doesNotMatch(vm!.output, /InfiniteLoop|PANIC|OutOfMemory/)
    })

    it("a server with another key: the board is refused and says why; the server logs the id", async function () {
        await server?.close()
        server = new Server({ port: serverPort, host: "127.0.0.1", timeout: TIMEOUT, keys: { kb1: "00".repeat(32) } })
        const w = new Promise<Warning>((r) => server!.on("warning", (x) => x.code === "auth-failed" && r(x)))
        await server.listen()
        const warning = await within(w, 20000, "auth-failed")
        assert.equal(warning.id, "kb1")
        assert.match(warning.detail, /wrong key/)
        assert.equal(server.connection("kb1")!.connects, 0)
        await vm!.waitFor(/the server refused this connection: the server did not accept this client's key .*not authenticated, so only a hint/, 5000)
    })

    it("key rotation: both keys on the server, the board redeployed with the next key, the old key removed; nothing ended", async function () {
        await server?.close()
        server = new Server({ port: serverPort, host: "127.0.0.1", timeout: TIMEOUT, keys: { kb1: { keys: [KEY, NEXT] } }, encrypt: true })
        await server.listen()
        // The running board (old key) is back once both keys are accepted.
        const old = await within(server.clientConn("kb1"), 20000, "board back with its old key")
        assert.equal(server.keyInUse("kb1"), 1)
        // Redeploy with IOT_KEY = the next key (the board restarts).
        next = await buildSimImage({ app: "testbed", id: "kb1", host: "127.0.0.1", port: mitmPort, timeout: TIMEOUT, verbose: true, key: NEXT, encrypt: true })
        const switched = new Promise<void>((r) => server!.on("connect", (c) => c.id === "kb1" && server!.keyInUse("kb1") === 2 && r()))
        await vm!.stop()
        vm = await runSim(next.image)
        await within(switched, 30000, "the board authenticated with the next key")
        assert.deepEqual(server.setKeys({ kb1: { keys: [NEXT] } }).ended, [], "the old key removed: no session on it")
        assert.equal(server.keyInUse("kb1"), 1, "the next key is now the only one")
        await within(old.write("after"), 5000, "a line to the switched board")
        assert.equal(await within(old.readline(), 5000, "its echo"), "after")
    })

    it("key push: the board on its deployed key gets the next one, keeps it (IOT_KEYN), confirms, and reconnects with it; the deployed key then removed, it still connects", async function () {
        // The running board was deployed with NEXT (the test before).
        await server?.close()
        server = new Server({ port: serverPort, host: "127.0.0.1", timeout: TIMEOUT, keys: { kb1: { keys: [NEXT, THIRD] } }, encrypt: true, pushKeys: true })
        await server.listen()
        const s = server
        await vm!.waitFor(/key pushed by the server, kept: using it from the next connect/, 30000)
        await until(() => s.keysPushed() === 1, 5000, "the server heard !rekeyed")
        const switched = new Promise<void>((r) => s.on("connect", (c) => c.id === "kb1" && s.keyInUse("kb1") === 2 && r()))
        s.connection("kb1")!.disconnect("test: reconnect")
        await within(switched, 30000, "the board authenticated with the pushed key")
        assert.deepEqual(s.setKeys({ kb1: THIRD }).ended, [], "the deployed key removed: no session on it")
        const again = new Promise<void>((r) => s.on("connect", (c) => c.id === "kb1" && s.keyInUse("kb1") === 1 && r()))
        s.connection("kb1")!.disconnect("test: reconnect")
        await within(again, 30000, "connects on the pushed key alone")
        assert.equal(s.keysPushed(), 1, "pushed once: not again to a board on the next key")
    })
})
