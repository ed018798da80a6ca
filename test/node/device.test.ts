// The real board firmware (bytecode compiled by DeviceScript) in the
// simulator VM, against the real Node server over loopback. Faults are
// injected on real sockets: a proxy that stalls or refuses, a raw server that
// speaks early or sends garbage, a server restart.
import assert from "node:assert/strict"
import { createServer, type Server as NetServer, type Socket } from "node:net"
import { Server } from "../../src/server/index.js"
import { buildSimImage, runSim, type SimConfig, type SimImage, type SimRun } from "../../src/server/cli/sim.js"
import { FaultProxy } from "../kit/proxy.js"
import { V1Server } from "../kit/v1peer.js"
import { freePort, until, within } from "../kit/util.js"

const TIMEOUT = 1000

describe("board firmware in the DeviceScript simulator", function () {
    this.timeout(120000)
    let port = 0
    let gatewayA = 0 // two gateways (image "gw"): IOT_HOST=127.0.0.1:gatewayA,127.0.0.1:gatewayB
    let gatewayB = 0
    const images = new Map<string, SimImage>()
    let running: SimRun[] = []
    let closers: Array<() => Promise<void> | void> = []

    async function image(key: string, c: Omit<SimConfig, "host" | "port"> & { host?: string }): Promise<SimImage> {
        const img = await buildSimImage({ host: "127.0.0.1", port, timeout: TIMEOUT, verbose: true, ...c })
        images.set(key, img)
        return img
    }

    before(async function () {
        this.timeout(300000)
        port = await freePort()
        // Built one after another: parallel devs builds compete for 2 cores.
        await image("tb1", { app: "testbed", id: "tb1" })
        await image("tb2", { app: "testbed", id: "tb2" })
        await image("tb3", { app: "testbed", id: "tb3" })
        await image("wd", { app: "testbed", id: "wd1", watchdog: 3000 })
        // Above the longest gap between attempts on a server that never
        // answers (2 timeouts, then a back-off of at most 3 s).
        await image("wd7", { app: "testbed", id: "wd2", watchdog: 7000 })
        gatewayA = await freePort()
        gatewayB = await freePort()
        await image("gw", { app: "testbed", id: "gw1", host: `127.0.0.1:${gatewayA},127.0.0.1:${gatewayB}` })
    })

    after(function () {
        for (const img of images.values()) img.remove()
    })

    afterEach(async function () {
        for (const r of running.splice(0)) await r.stop()
        for (const c of closers.splice(0).reverse()) await c()
    })

    async function board(key: string): Promise<SimRun> {
        const r = await runSim(images.get(key)!.image)
        running.push(r)
        return r
    }

    async function server(p = port): Promise<Server> {
        const s = new Server({ port: p, host: "127.0.0.1", timeout: TIMEOUT })
        await s.listen()
        closers.push(() => s.close())
        return s
    }

    async function readN(conn: { readline(): Promise<string> }, n: number, ms: number): Promise<string[]> {
        const out: string[] = []
        await within(
            (async () => {
                while (out.length < n) out.push(await conn.readline())
            })(),
            ms,
            `${n} lines (got ${out.length})`
        )
        return out
    }

    const range = (n: number, p: string) => Array.from({ length: n }, (_, i) => `${p}${i}`)

    it("connects, and lines go both ways with qos+wait, qos without wait, and no qos", async function () {
        const s = await server()
        const vm = await board("tb1")
        const conn = await within(s.clientConn("tb1"), 30000, "board connected")
        assert.equal(conn.peer, "devs-iot")
        await conn.write("hello")
        assert.equal(await within(conn.readline(), 5000, "echo"), "hello")
        await conn.write("fast", { qos: false })
        assert.equal(await within(conn.readline(), 5000, "echo of a no-qos line"), "fast")
        for (const [qos, wait, prefix] of [[true, true, "w"], [true, false, "n"], [false, false, "q"]] as const) {
            await conn.write(JSON.stringify({ cmd: "send", n: 20, prefix, qos, wait }))
            const got = await readN(conn, 21, 20000)
            const lines = got.slice(0, 20)
            if (wait) assert.deepEqual(lines, range(20, prefix))
            else assert.deepEqual([...lines].sort(), range(20, prefix).sort())
            assert.deepEqual(JSON.parse(got[20]!), { sent: 20, failed: 0 })
        }
        await vm.waitFor(/link up \(server speaks devs-iot/, 1000)
    })

    it("a burst of 1,000 lines to the board: nothing lost, nothing twice (fault 6)", async function () {
        const s = await server()
        await board("tb1")
        const conn = await within(s.clientConn("tb1"), 30000, "board connected")
        const writes = Promise.all(range(1000, "b").map((l) => conn.write(l, { wait: false })))
        const echoes = await readN(conn, 1000, 90000)
        await within(writes, 10000, "every write ACKed")
        assert.deepEqual([...echoes].sort(), range(1000, "b").sort())
        await conn.write(JSON.stringify({ cmd: "stats" }))
        const stats = JSON.parse(await within(conn.readline(), 5000, "stats"))
        // A duplicate the board sees is a resend (an ACK late under load):
        // dropped by its de-duplication, never echoed (checked above).
        assert.ok(stats.duplicates <= conn.stats.resent, `the board saw ${stats.duplicates} duplicates, the server resent ${conn.stats.resent}`)
        this.test!.title += ` (board dropped ${stats.dropped}, saw ${stats.duplicates} resent twice; server resent ${conn.stats.resent})`
    })

    it("server restart while the board writes: every line arrives exactly once", async function () {
        let s = await server()
        await board("tb1")
        let conn = await within(s.clientConn("tb1"), 30000, "board connected")
        const got: string[] = []
        await conn.write(JSON.stringify({ cmd: "send", n: 60, prefix: "r" }))
        got.push(...(await readN(conn, 20, 20000)))
        await s.close()
        s = await server()
        conn = await within(s.clientConn("tb1"), 30000, "board back")
        while (got.length < 61) got.push(await within(conn.readline(), 20000, `line ${got.length}`))
        assert.deepEqual(JSON.parse(got.pop()!), { sent: 60, failed: 0 })
        assert.deepEqual(got, range(60, "r"))
    })

    it("three boards at once, each with its own id", async function () {
        const s = await server()
        await Promise.all(["tb1", "tb2", "tb3"].map((k) => board(k)))
        await within(s.waitAll(["tb1", "tb2", "tb3"]), 60000, "all three connected")
        for (const id of ["tb1", "tb2", "tb3"]) {
            const conn = s.connection(id)!
            await conn.write(`hi ${id}`)
            assert.equal(await within(conn.readline(), 5000, `echo from ${id}`), `hi ${id}`)
        }
    })

    // A raw server: `onAccept` writes first, then the test drives the socket.
    async function rawServer(onAccept: (s: Socket) => void, p = port): Promise<{ sockets: Socket[]; next: () => Promise<Socket> }> {
        const sockets: Socket[] = []
        const waiting: Array<(s: Socket) => void> = []
        const srv: NetServer = createServer((s) => {
            s.on("error", () => {})
            sockets.push(s)
            onAccept(s)
            waiting.shift()?.(s)
        })
        await new Promise<void>((r) => srv.listen(p, "127.0.0.1", r))
        closers.push(
            () =>
                new Promise<void>((r) => {
                    for (const s of sockets) s.destroy()
                    srv.close(() => r())
                })
        )
        return {
            sockets,
            next: () => new Promise<Socket>((resolve) => (sockets.length > 0 ? resolve(sockets.shift()!) : waiting.push(resolve))),
        }
    }

    // Waits for `needle` in what the board sent on `s`.
    function sent(s: Socket, needle: string, ms: number): Promise<void> {
        let text = ""
        return within(
            new Promise<void>((resolve) => {
                const on = (b: Buffer) => {
                    text += b.toString()
                    if (text.includes(needle)) {
                        s.off("data", on)
                        resolve()
                    }
                }
                s.on("data", on)
            }),
            ms,
            `${JSON.stringify(needle)} from the board`
        )
    }

    it("a server that speaks within 10 ms of accept does not break the connect", async function () {
        const raw = await rawServer((s) => s.write("\n")) // a keepalive at once, before the id
        const vm = await board("tb1")
        const s = await within(raw.next(), 30000, "board connected")
        await sent(s, "tb1\n", 5000)
        await vm.waitFor(/testbed: status up/, 5000)
        const echo = sent(s, "hello", 5000)
        s.write("00hello\n")
        await echo
    })

    it("a line longer than the board's maximum, in one write: dropped and logged; the next line arrives; the heap holds", async function () {
        const raw = await rawServer(() => {})
        const vm = await board("tb1")
        const s = await within(raw.next(), 30000, "board connected")
        await sent(s, "tb1\n", 5000)
        s.write("\n") // v1 server: the first line brings the board up
        await vm.waitFor(/testbed: status up/, 5000)
        const big = "00" + "x".repeat(40000) + "\n"
        // One write: the simulator's sockets read it in 1 KB pieces, as an
        // ESP32 does (tools/jacdac-port.cjs).
        s.write(big)
        const echo = sent(s, "after", 10000)
        s.write("01after\n")
        await echo.catch((e) => {
            throw new Error(`${e.message}; the board printed:\n${vm.output.split("\n").slice(-15).join("\n")}`)
        })
        // A v1 server cannot be told: the board ACKs the line so it is not resent for ever, and logs it.
        await vm.waitFor(/too-long: dropped message 0 \(more than 2048 bytes, over the limit of 2048\): ACKed/, 1000)
        assert.doesNotMatch(vm.output, /OutOfMemory|PANIC/)
    })

    it("line limit, real server: 2,048 bytes (the board's limit) go both ways; a longer write() rejects at once with ETOOLONG naming the limit the board announced", async function () {
        const s = await server()
        const vm = await board("tb1")
        const conn = await within(s.clientConn("tb1"), 30000, "board connected")
        await vm.waitFor(/framing buffer \d+ bytes/, 1000)
        const line = "a".repeat(2048)
        await within(conn.write(line), 10000, "2,048 bytes to the board")
        assert.equal(await within(conn.readline(), 10000, "echo"), line)
        await assert.rejects(within(conn.write(line + "b"), 5000, "write of 2,049 bytes"), (e: Error & { code?: string }) => e.code === "ETOOLONG" && /peer's limit \(2048/.test(e.message))
        // Nothing stuck behind it: the next wait write goes.
        await within(conn.write("next"), 5000, "the next write")
        assert.equal(await within(conn.readline(), 5000, "echo"), "next")
    })

    it("lines of 1x, 10x and 50x the board's limit from a server that ignores it: 1x echoed, 10x and 50x refused (!toolong) and logged, never left un-ACKed; the heap holds", async function () {
        const raw = await rawServer(() => {})
        const vm = await board("tb1")
        const s = await within(raw.next(), 30000, "board connected")
        await sent(s, "tb1\n" + "\n".repeat(10), 5000)
        const hello = sent(s, "max=2048\n", 5000)
        s.write("!hello epoch=e1 max=65536\n") // a devs-iot server that announces its own limit only
        await hello
        await vm.waitFor(/testbed: status up/, 5000)
        const x = (n: number) => "x".repeat(n)
        const echo = sent(s, "00" + x(2048) + "\n", 10000)
        s.write("00" + x(2048) + "\n")
        await echo
        s.write("00\n") // ACK the echo
        for (const [id, n] of [["01", 10 * 2048], ["02", 50 * 2048]] as const) {
            const refused = sent(s, `!toolong id=${id} max=2048\n`, 20000)
            const big = id + x(n) + "\n"
            s.write(big) // read in 1 KB pieces, as an ESP32 does (tools/jacdac-port.cjs)
            await refused.catch((e) => {
                throw new Error(`${e.message}; the board printed:\n${vm.output.split("\n").slice(-40).join("\n")}`)
            })
        }
        const after = sent(s, "after", 10000)
        s.write("03after\n")
        await after.catch((e) => {
            throw new Error(`${e.message}; the board printed:\n${vm.output.split("\n").slice(-15).join("\n")}`)
        })
        await vm.waitFor(/too-long: refused message 2 \(more than 2048 bytes, over the limit of 2048\)/, 1000)
        assert.doesNotMatch(vm.output, /OutOfMemory|PANIC|InfiniteLoop/)
    })

    it("garbage lines are logged and dropped; the link goes on (fault 4)", async function () {
        const raw = await rawServer(() => {})
        const vm = await board("tb1")
        const s = await within(raw.next(), 30000, "board connected")
        await sent(s, "tb1\n", 5000)
        s.write("\n")
        await vm.waitFor(/testbed: status up/, 5000)
        const echo = sent(s, "ok", 5000)
        s.write("zz\nzzhello\n\x01\n05ok\n")
        await echo
        await vm.waitFor(/bad-line: line does not start with a two-digit hex id: zzhello/, 1000)
    })

    it("something else on the port (an SSH server: its banner, then it waits): never up, the reason logged once per back-off doubling, retried", async function () {
        let accepts = 0
        await rawServer((s) => {
            accepts++
            s.write("SSH-2.0-OpenSSH_9.6\r\n")
        })
        const vm = await board("tb1")
        await vm.waitFor(/no devs-iot or micropython-iot server at this address/, 30000)
        await until(() => accepts >= 5, 30000, `5 connects (got ${accepts})`)
        assert.doesNotMatch(vm.output, /status up/)
        const named = vm.output.split("no devs-iot or micropython-iot server at this address").length - 1
        assert.ok(named <= Math.floor(Math.log2(accepts)) + 1, `once per back-off doubling: ${named} for ${accepts} connects`)
    })

    it("against an original (v1) server written from docs/protocol.md: connects as v1, lines both ways, no extension line", async function () {
        const v1 = new V1Server({ timeout: TIMEOUT, port })
        await v1.listen()
        closers.push(() => v1.close())
        const vm = await board("tb1")
        await within(v1.connected("tb1"), 30000, "board connected to the V1Server")
        await vm.waitFor(/link up \(server speaks v1/, 5000)
        await v1.write("tb1", "hello")
        assert.equal(await within(v1.readline("tb1"), 5000, "echo"), "hello")
        await v1.write("tb1", JSON.stringify({ cmd: "send", n: 10, prefix: "v", wait: false }))
        const got: string[] = []
        while (got.length < 11) got.push(await within(v1.readline("tb1"), 10000, `line ${got.length}`))
        assert.deepEqual(got.slice(0, 10).sort(), range(10, "v").sort())
        assert.equal(v1.rawLines().filter((l) => l.startsWith("!")).length, 0)
    })

    it("network loss: a stall is seen within timeout, a refused reconnect is retried, nothing is lost", async function () {
        const backend = await freePort()
        const s = await server(backend)
        const proxy = new FaultProxy(backend)
        await proxy.listen(port)
        closers.push(() => proxy.close())
        const vm = await board("tb1")
        const conn = await within(s.clientConn("tb1"), 30000, "board connected")
        await conn.write(JSON.stringify({ cmd: "send", n: 40, prefix: "s" }))
        const got = await readN(conn, 5, 10000)
        let mark = vm.printed
        proxy.stall(true)
        await vm.waitFor(/link down: nothing received for 1000 ms/, 5000, mark)
        proxy.refuse(true)
        proxy.stall(false)
        proxy.cut("rst")
        mark = vm.printed
        await vm.waitFor(/connect to 127\.0\.0\.1:\d+ failed/, 10000, mark)
        proxy.refuse(false)
        while (got.length < 41) got.push(await within(conn.readline(), 30000, `line ${got.length}`))
        assert.deepEqual(JSON.parse(got.pop()!), { sent: 40, failed: 0 })
        assert.deepEqual(got, range(40, "s"))
    })

    it("only the server down: refused connects are retried without ever cycling WiFi, and the log says why", async function () {
        const vm = await board("tb1") // nothing listens on `port`: every connect is refused
        let from = 0
        for (let i = 0; i < 6; i++) {
            const m = await vm.waitFor(/connect to 127\.0\.0\.1:\d+ failed/, 30000, from)
            from = m.index! + m[0].length
        }
        assert.match(vm.output, /failed: [^\n]*\(the server is down, WiFi is fine\)/)
        assert.doesNotMatch(vm.output, /rejoining/)
        const s = await server()
        await within(s.clientConn("tb1"), 30000, "board connected once the server is up")
    })

    it("the heartbeat blinks on a busy link (no keepalives are sent while lines flow)", async function () {
        const s = await server()
        await board("tb1")
        const conn = await within(s.clientConn("tb1"), 30000, "board connected")
        const stats = async () => {
            await conn.write(JSON.stringify({ cmd: "stats" }))
            while (true) {
                const l = await within(conn.readline(), 10000, "stats")
                if (l.startsWith('{"connects"')) return JSON.parse(l)
            }
        }
        const before = (await stats()).beats as number
        // Lines both ways without a pause for 3 timeouts: the board echoes each.
        const until = Date.now() + 3 * TIMEOUT
        let n = 0
        while (Date.now() < until) {
            await conn.write(`busy${n++}`)
            await within(conn.readline(), 10000, "echo")
        }
        const after = (await stats()).beats as number
        assert.ok(after - before >= 3, `heartbeat blinks during ${n} echoed lines: ${before} -> ${after}`)
    })

    it("watchdog: no reboot while the server is down for 8 s; a reboot when a wait for WiFi hangs after the link drops", async function () {
        const vm = await board("wd")
        await vm.waitFor(/testbed: started wd1/, 30000)
        await new Promise((r) => setTimeout(r, 8000)) // the server is down: the condition under test
        assert.doesNotMatch(vm.output, /watchdog/)
        const s = await server()
        const conn = await within(s.clientConn("wd1"), 30000, "board connected")
        const mark = vm.printed
        await conn.write(JSON.stringify({ cmd: "hang" }))
        await vm.waitFor(/testbed: the next wait for WiFi hangs/, 15000, mark)
        // The link drops; the board's next wait for WiFi never returns.
        await s.close()
        await vm.waitFor(/watchdog: no progress for 3000 ms, rebooting/, 15000, mark)
        await vm.waitFor(/testbed: started wd1/, 15000, mark)
    })

    it("watchdog: no reboot while the server's address accepts but no link comes up (a proxy before a dead server closes, a hung server never answers)", async function () {
        // Every other connection is closed after 150 ms without a byte, the
        // others are held open and never answered.
        let n = 0
        const raw = await rawServer((s) => {
            if (n++ % 2 === 0) setTimeout(() => s.destroy(), 150)
        })
        const vm = await board("wd7")
        await vm.waitFor(/testbed: started wd2/, 30000)
        await new Promise((r) => setTimeout(r, 15000)) // twice the watchdog's 7 s
        assert.ok(raw.sockets.length >= 4, `${raw.sockets.length} connections`)
        assert.doesNotMatch(vm.output, /watchdog/)
        assert.doesNotMatch(vm.output, /rejoining/) // the network answered: WiFi is fine
    })

    it("two gateways, the first accepts and never answers: the board moves on to the second", async function () {
        const hung = await rawServer(() => {}, gatewayA)
        const s = await server(gatewayB)
        const vm = await board("gw")
        await within(s.clientConn("gw1"), 30000, "board connected to the second gateway")
        assert.equal(hung.sockets.length, 1, "one attempt on the hung gateway")
        assert.match(vm.output, new RegExp(`link down \\([^)]*\\); reconnect in \\d+ ms[\\s\\S]*connecting to 127\\.0\\.0\\.1:${gatewayB}`))
    })

    it("an IP address lost while the link is up: WiFi is rejoined once the link is down", async function () {
        let s = await server()
        const vm = await board("tb1")
        const conn = await within(s.clientConn("tb1"), 30000, "board connected")
        const mark = vm.printed
        await conn.write(JSON.stringify({ cmd: "lost" }))
        await vm.waitFor(/network: WiFi lost its IP address(?!:)/, 10000, mark)
        assert.doesNotMatch(vm.output.slice(mark - (vm.printed - vm.output.length)), /rejoining/) // not while the link is up
        await s.close() // the link goes down, as it does once the IP is gone
        await vm.waitFor(/network: WiFi lost its IP address: rejoining simulator/, 15000, mark)
        s = await server()
        await within(s.clientConn("tb1"), 30000, "board back")
    })
})
