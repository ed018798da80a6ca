// The HTTP side over loopback: Prometheus metrics, the status API, the event
// stream, the token-gated actions, and its security (no secret in any
// response, constant-time token, loopback host names only, bounded bodies).
import assert from "node:assert/strict"
import { request, type IncomingHttpHeaders } from "node:http"
import { connect } from "node:net"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { PerformanceObserver } from "node:perf_hooks"
import { Client, HttpStatus, Server } from "../../src/server/index.js"
import { MAX_EVENT_CLIENTS, MAX_HTTP_CONNECTIONS } from "../../src/server/http.js"
import { BOARD_LOG_CHARS, BOARD_LOG_LINES, outageKind } from "../../src/server/fleet.js"
import { OtaGateway } from "../../src/server/ota/gateway.js"
import { logsToFleet } from "../../src/server/cli/ota.js"
import { ROOT } from "../kit/devs.js"
import { cleanup, cli, closeAll, onCleanup, within, type Cli } from "../kit/util.js"

const T = 400
const TOKEN = "s3cret-token-for-the-http-side"
const KEY = "11".repeat(32)

afterEach(closeAll)

interface Reply {
    status: number
    headers: IncomingHttpHeaders
    body: string
}

function http(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Reply> {
    return within(
        new Promise((resolve, reject) => {
            const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
                const parts: Buffer[] = []
                res.on("data", (b: Buffer) => parts.push(b))
                res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString() }))
            })
            req.on("error", reject)
            req.end(body)
        }),
        10000,
        `${method} ${path}`
    )
}

const get = (port: number, path: string, headers: Record<string, string> = {}) => http(port, "GET", path, headers)
const post = (port: number, path: string, body = "", token?: string) =>
    http(port, "POST", path, token === undefined ? {} : { Authorization: `Bearer ${token}` }, body)

// A metric's value in the Prometheus text (a line "name{labels} value").
function metric(text: string, series: string): number {
    const line = text.split("\n").find((l) => l.startsWith(series + " "))
    assert.ok(line, `no series ${series} in:\n${text}`)
    return Number(line.slice(series.length + 1))
}

async function start(opts: { token?: string; keys?: Record<string, string> } = {}): Promise<{ server: Server; status: HttpStatus; port: number }> {
    const server = cleanup(new Server({ port: 0, host: "127.0.0.1", timeout: T, keys: opts.keys }))
    const status = new HttpStatus(server, { port: 0, token: opts.token })
    await server.listen()
    await status.listen()
    onCleanup(() => status.close())
    return { server, status, port: status.port }
}

function client(server: Server, id: string, opts: Partial<ConstructorParameters<typeof Client>[0]> = {}): Client {
    return cleanup(new Client({ id, port: server.port, timeout: T, ...opts })).start()
}

// An event stream: everything received so far, and a wait for a pattern.
function stream(port: number): Promise<{ text: () => string; waitFor: (re: RegExp) => Promise<void>; status: number }> {
    return new Promise((resolve, reject) => {
        let text = ""
        const waiters: Array<() => void> = []
        const req = request({ host: "127.0.0.1", port, path: "/api/events" }, (res) => {
            res.on("data", (b: Buffer) => {
                text += b.toString()
                for (const w of waiters.splice(0)) w()
            })
            res.on("error", () => {})
            resolve({
                status: res.statusCode ?? 0,
                text: () => text,
                waitFor: (re) =>
                    within(
                        new Promise<void>((done) => {
                            const check = () => (re.test(text) ? done() : waiters.push(check))
                            check()
                        }),
                        5000,
                        `${re} in the event stream:\n${text}`
                    ),
            })
        })
        req.on("error", reject)
        req.end()
        onCleanup(() => void req.destroy())
    })
}

describe("HTTP side: metrics, status API, dashboard, actions", function () {
    this.timeout(30000)

    describe("metrics", function () {
        it("servers started and closed in one process start the process metrics (GC observer, event-loop monitor) once", async function () {
            // prom-client's process metrics observe GC and the event loop
            // until the process ends; one set serves every server.
            let gcObservers = 0
            const observe = PerformanceObserver.prototype.observe
            PerformanceObserver.prototype.observe = function (this: PerformanceObserver, o: Parameters<PerformanceObserver["observe"]>[0]) {
                if (JSON.stringify(o).includes('"gc"')) gcObservers++
                return observe.call(this, o)
            }
            try {
                for (let i = 0; i < 3; i++) {
                    const status = new HttpStatus(new Server({ port: 0 }), { port: 0 })
                    await status.listen()
                    const body = (await get(status.port, "/metrics")).body
                    assert.match(body, /^# TYPE nodejs_gc_duration_seconds histogram$/m)
                    assert.match(body, /^devs_iot_links_up 0$/m)
                    await status.close()
                }
            } finally {
                PerformanceObserver.prototype.observe = observe
            }
            assert.ok(gcObservers <= 1, `${gcObservers} GC observers started`)
        })

        it("GET /metrics: links, connects, lines and bytes each way, round trips, outages by kind, memory and event-loop lag", async function () {
            const { server, port } = await start()
            const c = client(server, "a")
            const conn = await within(server.clientConn("a"), 5000, "a connects")
            await c.write("hello") // 5 bytes
            await conn.write("world!") // 6 bytes
            assert.equal(await conn.readline(), "hello")
            assert.equal(await c.readline(), "world!")
            let r = await get(port, "/metrics")
            assert.equal(r.status, 200)
            assert.match(String(r.headers["content-type"]), /^text\/plain; version=0\.0\.4/)
            assert.equal(metric(r.body, "devs_iot_links_up"), 1)
            assert.equal(metric(r.body, "devs_iot_boards"), 1)
            assert.equal(metric(r.body, "devs_iot_connects_total"), 1)
            assert.equal(metric(r.body, 'devs_iot_lines_total{direction="in"}'), 1)
            assert.equal(metric(r.body, 'devs_iot_lines_total{direction="out"}'), 1)
            assert.equal(metric(r.body, 'devs_iot_line_bytes_total{direction="in"}'), 5)
            assert.equal(metric(r.body, 'devs_iot_line_bytes_total{direction="out"}'), 6)
            assert.equal(metric(r.body, "devs_iot_round_trip_seconds_count"), 1)
            assert.ok(metric(r.body, "process_resident_memory_bytes") > 0)
            assert.ok(metric(r.body, "nodejs_eventloop_lag_seconds") >= 0)
            for (const m of ["devs_iot_resends_total", "devs_iot_duplicates_total", "devs_iot_refused_writes_total", 'devs_iot_caps_hit_total{cap="too-many-clients"}', 'devs_iot_auth_failures_total{reason="wrong-key"}'])
                assert.equal(metric(r.body, m), 0, m)
            const down = once(server, "disconnect")
            await c.close()
            await within(down, 5000, "a down")
            r = await get(port, "/metrics")
            assert.equal(metric(r.body, "devs_iot_links_up"), 0)
            assert.equal(metric(r.body, 'devs_iot_outages_total{reason="closed-by-peer"}'), 1)
        })

        it("no label carries a board id: the series are the same for one board or many", async function () {
            const { server, port } = await start()
            client(server, "board-one")
            await within(server.clientConn("board-one"), 5000, "one")
            const series = (t: string) => t.split("\n").filter((l) => l.startsWith("devs_iot_")).map((l) => l.replace(/ [^ ]+$/, "")).sort()
            const one = series((await get(port, "/metrics")).body)
            for (const id of ["board-two", "board-three"]) client(server, id)
            await within(server.waitAll(["board-two", "board-three"]), 5000, "two more")
            const text = (await get(port, "/metrics")).body
            assert.deepEqual(series(text), one)
            assert.ok(!text.includes("board-"), "an id in the metrics")
        })

        it("counters do not go down when the server lets go of an id (evicted for room, forgotten): Prometheus would read a restart", async function () {
            const { server, port } = await start()
            const c = client(server, "gone")
            const conn = await within(server.clientConn("gone"), 5000, "gone connects")
            await c.write("hello")
            assert.equal(await conn.readline(), "hello")
            await conn.write("world!")
            await assert.rejects(conn.write(""), { code: "EEMPTY" })
            const counters = (t: string) => t.split("\n").filter((l) => /^devs_iot_\w+_total/.test(l) && !l.includes("outages_total")) // an outage is counted as it is let go
            const before = counters((await get(port, "/metrics")).body)
            assert.ok(before.includes('devs_iot_lines_total{direction="in"} 1'), before.join("\n"))
            assert.ok(server.forget("gone", "test"))
            assert.deepEqual(counters((await get(port, "/metrics")).body), before)
        })

        it("refused writes and a full write queue are counted", async function () {
            const { server, port } = await start()
            client(server, "a")
            const conn = await within(server.clientConn("a"), 5000, "a")
            await assert.rejects(conn.write(""), { code: "EEMPTY" })
            const r = await get(port, "/metrics")
            assert.equal(metric(r.body, "devs_iot_refused_writes_total"), 1)
            assert.equal(metric(r.body, 'devs_iot_caps_hit_total{cap="write-queue-full"}'), 0)
        })

        it("failed authentications of links are counted by reason: a wrong key, a keyed id without a key", async function () {
            const { server, port } = await start({ keys: { a: KEY } })
            const warned = (code: string) => new Promise<void>((done) => server.on("warning", (w: { code: string }) => w.code === code && done()))
            const failed = warned("auth-failed")
            const wrong = client(server, "a", { key: "22".repeat(32) })
            await within(failed, 5000, "the wrong key's warning")
            await wrong.close()
            const refused = warned("auth-refused")
            client(server, "a")
            await within(refused, 5000, "the keyless client's warning")
            const r = await get(port, "/metrics")
            assert.ok(metric(r.body, 'devs_iot_auth_failures_total{reason="wrong-key"}') >= 1, "wrong-key")
            assert.ok(metric(r.body, 'devs_iot_auth_failures_total{reason="plain-refused"}') >= 1, "plain-refused")
            assert.equal(metric(r.body, 'devs_iot_auth_failures_total{reason="handshake"}'), 0)
            assert.equal(metric(r.body, "devs_iot_links_up"), 0)
        })

        it("resends and duplicates dropped are counted: a raw v1 peer that never ACKs and sends one message twice", async function () {
            const { server, port } = await start()
            const sock = connect(server.port, "127.0.0.1")
            onCleanup(() => void sock.destroy())
            sock.on("error", () => {})
            sock.write("raw\n")
            const keepalive = setInterval(() => sock.write("\n"), T / 4)
            onCleanup(() => clearInterval(keepalive))
            const conn = await within(server.clientConn("raw"), 5000, "raw connects")
            conn.write("never acked").catch(() => {}) // qos: resent until the peer ACKs, which it never does
            sock.write("05twice\n05twice\n")
            assert.equal(await within(conn.readline(), 5000, "the line"), "twice")
            await within(new Promise<void>((done) => {
                const check = () => (conn.stats.resent > 0 && conn.stats.duplicates > 0 ? done() : setTimeout(check, 50))
                check()
            }), 10000, "a resend and a duplicate")
            const r = await get(port, "/metrics")
            assert.ok(metric(r.body, "devs_iot_resends_total") >= 1, "resends")
            assert.equal(metric(r.body, "devs_iot_duplicates_total"), 1)
        })

        it("outage reasons fall into few kinds", function () {
            assert.equal(outageKind("nothing received for 400 ms"), "timeout")
            assert.equal(outageKind("closed by peer"), "closed-by-peer")
            assert.equal(outageKind("socket error ECONNRESET"), "socket-error")
            assert.equal(outageKind("taken over by a new connection"), "taken-over")
            assert.equal(outageKind("authentication: wrong key"), "auth")
            assert.equal(outageKind("disconnected by the operator"), "operator")
            assert.equal(outageKind("something new"), "other")
        })
    })

    describe("status API", function () {
        it("GET /api/boards and /api/boards/<id>: state, since, address, round trip, queues, outages, reconnects, last reason", async function () {
            const { server, port } = await start()
            const c = client(server, "a/b c")
            const conn = await within(server.clientConn("a/b c"), 5000, "connects")
            await conn.write("x")
            let r = await get(port, "/api/boards")
            assert.equal(r.status, 200)
            assert.match(String(r.headers["content-type"]), /^application\/json/)
            const list = JSON.parse(r.body)
            assert.equal(list.total, 1)
            assert.equal(list.up, 1)
            assert.equal(list.next, null)
            const b = list.boards[0]
            assert.equal(b.id, "a/b c")
            assert.equal(b.up, true)
            assert.equal(b.peer, "devs-iot")
            assert.match(b.address, /^127\.0\.0\.1:\d+$/)
            assert.ok(Date.parse(b.since) > 0)
            assert.equal(typeof b.roundTripMs, "number")
            assert.equal(b.queuedOut, 0)
            assert.equal(b.outages, 0)
            assert.equal(b.reconnects, 0)
            assert.equal(b.lastReason, null)
            r = await get(port, "/api/boards/" + encodeURIComponent("a/b c"))
            assert.equal(r.status, 200)
            assert.equal(JSON.parse(r.body).id, "a/b c")
            const down = once(server, "disconnect")
            await c.close()
            await within(down, 5000, "down")
            const d = JSON.parse((await get(port, "/api/boards/" + encodeURIComponent("a/b c"))).body)
            assert.equal(d.up, false)
            assert.equal(d.outages, 1)
            assert.equal(d.lastReason, "closed by peer")
            assert.equal((await get(port, "/api/boards/nope")).status, 404)
            assert.equal((await get(port, "/api/boards/%E0%A4%A")).status, 400)
        })

        it("a board's report of itself shows in its status and comes on the event stream", async function () {
            const { server, port } = await start()
            const c = client(server, "r")
            await within(c.connected(), 5000, "up")
            assert.equal(JSON.parse((await get(port, "/api/boards/r")).body).report, null)
            const s = await stream(port)
            assert.equal(c.sendReport({ firmware: "1.4.2", uptime: 3600, reconnects: 2, heap: 20480, rssi: -67, reset: "watchdog" }), true)
            await s.waitFor(/event: boards\ndata: \[[^\n]*"firmware":"1.4.2"/)
            const r = JSON.parse((await get(port, "/api/boards/r")).body).report
            assert.deepEqual({ ...r, at: undefined }, { firmware: "1.4.2", uptime: 3600, heap: 20480, rssi: -67, reconnects: 2, reset: "watchdog", at: undefined })
            assert.ok(Date.parse(r.at) > 0)
        })

        it("a board's console lines and last exception from its over-the-air sessions show in its status, bounded", async function () {
            const { server, status, port } = await start()
            const c = client(server, "b1")
            await within(c.connected(), 5000, "up")
            const gateway = new OtaGateway({ port: 0, host: "127.0.0.1", keys: new Map() }) // its events only: not listening
            logsToFleet(gateway, status.fleet)
            const s = await stream(port)
            for (let i = 0; i < BOARD_LOG_LINES + 10; i++) gateway.emit("log", "b1", "console", `line ${i}`)
            gateway.emit("log", "b1", "runtime", "WSSK-H: send cmd=0x95") // the runtime's own lines: server log only
            gateway.emit("log", "b1", "console", "<b>" + "x".repeat(5000))
            gateway.emit("exception", "b1", { name: "TypeError", message: "cannot read <i>x</i>", stack: ["at main"] })
            gateway.emit("log", "never-up", "console", "not kept") // an id that never came up gets no entry
            await s.waitFor(/event: boards\ndata: \[[^\n]*"TypeError"/)
            const b = JSON.parse((await get(port, "/api/boards/b1")).body)
            assert.equal(b.log.length, BOARD_LOG_LINES)
            assert.equal(b.log[0], "line 11")
            assert.equal(b.log[BOARD_LOG_LINES - 1], ("<b>" + "x".repeat(5000)).slice(0, BOARD_LOG_CHARS))
            assert.ok(!b.log.some((l: string) => l.startsWith("WSSK-H")))
            assert.deepEqual({ ...b.exception, at: undefined }, { name: "TypeError", message: "cannot read <i>x</i>", at: undefined })
            assert.equal((await get(port, "/api/boards/never-up")).status, 404)
        })

        it("pages: limit and offset, next is where the next page starts; a bad limit is refused", async function () {
            const { server, port } = await start()
            for (const id of ["a", "b", "c"]) client(server, id)
            await within(server.waitAll(["a", "b", "c"]), 5000, "three")
            const p1 = JSON.parse((await get(port, "/api/boards?limit=2")).body)
            assert.equal(p1.boards.length, 2)
            assert.equal(p1.next, 2)
            const p2 = JSON.parse((await get(port, "/api/boards?offset=2&limit=2")).body)
            assert.equal(p2.boards.length, 1)
            assert.equal(p2.next, null)
            assert.equal((await get(port, "/api/boards?limit=100000")).status, 400)
            assert.equal((await get(port, "/api/boards?offset=-1")).status, 400)
        })

        it("the event stream sends a tick at once and a board's changes as they happen", async function () {
            const { server, port } = await start()
            const s = await stream(port)
            assert.equal(s.status, 200)
            await s.waitFor(/event: tick\ndata: \{[^\n]*"boards":0/)
            const c = client(server, "ev")
            await s.waitFor(/event: boards\ndata: \[[^\n]*"id":"ev","up":true/)
            await c.close()
            await s.waitFor(/event: boards\ndata: \[[^\n]*"id":"ev","up":false/)
        })

        it(`at most ${MAX_EVENT_CLIENTS} event streams; the next gets 503`, async function () {
            const { port } = await start()
            for (let i = 0; i < MAX_EVENT_CLIENTS; i++) assert.equal((await stream(port)).status, 200)
            assert.equal((await get(port, "/api/events")).status, 503)
        })
    })

    describe("actions", function () {
        it("without a configured token every action is refused (403)", async function () {
            const { server, port } = await start()
            client(server, "a")
            await within(server.clientConn("a"), 5000, "a")
            const r = await post(port, "/api/boards/a/disconnect", "", "whatever-token-123")
            assert.equal(r.status, 403)
            assert.match(r.body, /no HTTP token/)
        })

        it("with a token: missing or wrong is 401 (and counted); right disconnects a board, which comes back", async function () {
            const { server, port } = await start({ token: TOKEN })
            const c = client(server, "a")
            const conn = await within(server.clientConn("a"), 5000, "a")
            assert.equal((await post(port, "/api/boards/a/disconnect")).status, 401)
            assert.equal((await post(port, "/api/boards/a/disconnect", "", TOKEN + "x")).status, 401)
            assert.equal((await post(port, "/api/boards/a/disconnect", "", "short")).status, 401)
            assert.equal((await http(port, "POST", "/api/boards/a/disconnect", { Authorization: TOKEN })).status, 401)
            assert.equal(conn.connects, 1, "not disconnected by a refused request")
            assert.equal(metric((await get(port, "/metrics")).body, 'devs_iot_auth_failures_total{reason="http-token"}'), 4)
            const back = new Promise<void>((resolve) => server.on("connect", (x) => x.id === "a" && x.connects === 2 && resolve()))
            const r = await post(port, "/api/boards/a/disconnect", "", TOKEN)
            assert.equal(r.status, 200)
            assert.deepEqual(JSON.parse(r.body), { disconnected: true })
            await within(back, 10000, "a reconnects")
            const b = JSON.parse((await get(port, "/api/boards/a")).body)
            assert.equal(b.lastReason, "disconnected by the operator")
            assert.equal(b.reconnects, 1)
            await within(c.connected(), 5000, "client up again")
            assert.equal((await post(port, "/api/boards/zzz/disconnect", "", TOKEN)).status, 404)
            assert.equal((await get(port, "/api/boards/a/disconnect")).status, 405)
        })

        it("send a line: queued (202) and read by the board; a bad line is 400 with the link's code; a big body 413", async function () {
            const { server, port } = await start({ token: TOKEN })
            const c = client(server, "a")
            await within(server.clientConn("a"), 5000, "a")
            const r = await post(port, "/api/boards/a/send", "from the operator\n", TOKEN)
            assert.equal(r.status, 202)
            assert.equal(await within(c.readline(), 5000, "line"), "from the operator")
            const bad = await post(port, "/api/boards/a/send", "two\nlines", TOKEN)
            assert.equal(bad.status, 400)
            assert.equal(JSON.parse(bad.body).code, "ENEWLINE")
            assert.equal((await post(port, "/api/boards/a/send", "", TOKEN)).status, 400)
            assert.equal((await post(port, "/api/boards/a/send", "x".repeat(300000), TOKEN)).status, 413)
        })
    })

    describe("security", function () {
        it("no secret in any response: neither the token nor a client key", async function () {
            const { server, port } = await start({ token: TOKEN, keys: { k: KEY } })
            client(server, "k", { key: KEY })
            await within(server.clientConn("k"), 5000, "keyed client")
            const s = await stream(port)
            await s.waitFor(/event: tick/)
            for (const path of ["/", "/dashboard.js", "/dashboard.css", "/metrics", "/api/boards", "/api/boards/k", "/nope"]) {
                const r = await get(port, path)
                for (const secret of [TOKEN, KEY, Buffer.from(KEY, "hex").toString("base64")]) assert.ok(!r.body.includes(secret), `${path} holds a secret`)
                assert.equal(r.headers["x-content-type-options"], "nosniff", path)
                assert.match(String(r.headers["content-security-policy"]), /script-src 'self'/, path)
            }
            assert.ok(!s.text().includes(TOKEN) && !s.text().includes(KEY))
        })

        it("bound to loopback, it answers only loopback host names (no DNS rebinding)", async function () {
            const { port } = await start()
            assert.equal((await get(port, "/api/boards", { Host: "evil.example:80" })).status, 421)
            assert.equal((await get(port, "/api/events", { Host: "evil.example:80" })).status, 421)
            assert.equal((await get(port, "/api/boards", { Host: `localhost:${port}` })).status, 200)
            assert.equal((await get(port, "/api/boards", { Host: `127.0.0.1:${port}` })).status, 200)
        })

        it("bound to another address, it answers loopback names, IP addresses and the names it is given, not other names (a DNS rebinding reads all of it otherwise)", async function () {
            const server = cleanup(new Server({ port: 0, host: "127.0.0.1", timeout: T }))
            await server.listen()
            const status = new HttpStatus(server, { port: 0, host: "0.0.0.0", allowedHosts: ["IoT.lan"] })
            await status.listen()
            onCleanup(() => status.close())
            const port = status.port
            const answer = async (host: string) => (await get(port, "/api/boards", { Host: host })).status
            assert.equal(await answer(`evil.example:${port}`), 421)
            assert.match((await get(port, "/", { Host: "evil.example" })).body, /--http-allowed-hosts/)
            for (const h of [`localhost:${port}`, `192.168.1.20:${port}`, `[fe80::1]:${port}`, `iot.lan:${port}`, "IOT.LAN"]) assert.equal(await answer(h), 200, h)
            // The metrics (no board id, no address) answer any name: Prometheus scrapes by service name.
            assert.equal((await get(port, "/metrics", { Host: `devs-iot:${port}` })).status, 200)
        })

        it("a browser's request from another site's page is refused (an <img> there held event streams); the page's own, the address bar's, a followed link's and non-browser clients' are answered", async function () {
            const { port } = await start({ token: TOKEN })
            for (const site of ["cross-site", "same-site"]) {
                assert.equal((await get(port, "/api/events", { "Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image" })).status, 403, site)
                assert.equal((await get(port, "/metrics", { "Sec-Fetch-Site": site })).status, 403, site)
                assert.equal((await http(port, "POST", "/api/boards/x/disconnect", { "Sec-Fetch-Site": site, Authorization: `Bearer ${TOKEN}` })).status, 403, site)
            }
            for (const site of ["same-origin", "none"]) assert.equal((await get(port, "/api/boards", { "Sec-Fetch-Site": site })).status, 200, site)
            // A link followed from another site opens the page; the same in a frame does not.
            const link = { "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate" }
            assert.equal((await get(port, "/", { ...link, "Sec-Fetch-Dest": "document" })).status, 200)
            assert.equal((await get(port, "/api/events", { ...link, "Sec-Fetch-Dest": "iframe" })).status, 403)
            assert.equal((await get(port, "/api/boards")).status, 200)
        })

        it(`at most ${MAX_HTTP_CONNECTIONS} HTTP connections: one more is closed at once; once one goes, requests are answered again`, async function () {
            const { port } = await start()
            const open = async () => {
                const s = connect(port, "127.0.0.1")
                s.on("error", () => undefined)
                onCleanup(() => void s.destroy())
                await within(new Promise<void>((r) => s.once("connect", () => r())), 5000, "connect")
                return s
            }
            const idle = []
            for (let i = 0; i < MAX_HTTP_CONNECTIONS; i++) idle.push(await open())
            await new Promise((r) => setImmediate(r)) // the server accepted them
            const extra = await open()
            await within(new Promise<void>((r) => extra.once("close", () => r())), 5000, "one more closed at once")
            idle[0]!.destroy()
            await within(
                (async () => {
                    for (;;) if ((await get(port, "/api/boards").catch(() => ({ status: 0 }))).status === 200) return
                })(),
                5000,
                "answered again",
            )
            for (const s of idle) s.destroy()
        })

        it("close() twice gives one promise; listen() after close() rejects with ECLOSED and leaves nothing listening", async function () {
            const status = new HttpStatus(new Server({ port: 0 }), { port: 0 })
            await status.listen()
            const port = status.port
            const closing = status.close()
            assert.equal(status.close(), closing)
            await closing
            await assert.rejects(status.listen(), { code: "ECLOSED" })
            await assert.rejects(get(port, "/metrics"), { code: "ECONNREFUSED" })
        })

        it("new HttpStatus() refuses (ECONFIG) an option key it does not take, by name, as new Server() does, and names the option a bad value is for", function () {
            const server = new Server({ port: 0 })
            const js = <T>(o: unknown) => o as T // plain JS: no type check
            const econfig = (re: RegExp) => (e: Error & { code?: string }) => e.code === "ECONFIG" && re.test(e.message)
            // Before, a misspelt key was ignored: { prot, tokn } served on a free port with the actions off.
            assert.throws(() => new HttpStatus(server, js({ prot: 9000 })), econfig(/^prot is not an option of new HttpStatus\(\) \(did you mean port\?\)$/))
            assert.throws(() => new HttpStatus(server, js({ port: 0, tokn: TOKEN })), econfig(/^tokn is not an option of new HttpStatus\(\) \(did you mean token\?\)$/))
            assert.throws(() => new HttpStatus(server, js(undefined)), econfig(/^new HttpStatus\(\) needs its options/))
            assert.throws(() => new HttpStatus(server, { port: -1 }), econfig(/^port must be/))
            assert.throws(() => new HttpStatus(server, { port: 0, host: "" }), econfig(/^host must be a non-empty string$/))
            assert.throws(() => new HttpStatus(server, js({ port: 0, allowedHosts: "iot.lan" })), econfig(/^allowedHosts must be a list of host names, got "iot.lan"$/))
        })

        it("the token is compared in constant time (hashes, timingSafeEqual) and only its hash is kept", function () {
            const src = readFileSync(join(ROOT, "src/server/http.ts"), "utf-8")
            assert.match(src, /timingSafeEqual\(sha256\(/)
            const status = new HttpStatus(new Server({ port: 0 }), { port: 0, token: TOKEN })
            for (const v of Object.values(status)) assert.notEqual(v, TOKEN)
            status.fleet.detach()
            status.metrics.close()
            assert.throws(() => new HttpStatus(new Server({ port: 0 }), { port: 0, token: "short" }), /16 to 1024 characters/)
        })

        it("the page sets board strings as text only (no innerHTML and the like)", function () {
            const js = readFileSync(join(ROOT, "src/server/dashboard/dashboard.js"), "utf-8")
            for (const sink of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"]) assert.ok(!js.includes(sink), sink)
            assert.match(js, /textContent/)
        })
    })

    describe("CLI", function () {
        let running: Cli[] = []
        afterEach(() => {
            for (const c of running) c.stop()
            running = []
        })

        it("--http-port serves /metrics; the token from the environment enables actions", async function () {
            const c = cli(["server", "--port", "0", "--http-port", "0", "--json"], { DEVS_IOT_HTTP_TOKEN: TOKEN })
            running.push(c)
            const m = await c.waitFor(/"port":(\d+),"actions":true,"msg":"HTTP status listening"/, 15000)
            const port = Number(m[1])
            const r = await get(port, "/metrics")
            assert.equal(r.status, 200)
            assert.match(r.body, /devs_iot_links_up 0/)
            assert.ok(!c.stdout.includes(TOKEN) && !c.stderr.includes(TOKEN), "the token in the log")
        })

        for (const [args, env, re] of [
            [["server", "--http-token", TOKEN], {}, /--http-token needs --http-port/],
            [["server", "--http-port", "0", "--http-token", "short"], {}, /--http-token: the HTTP token must be 16 to 1024 characters/],
            [["server", "--http-port", "0", "--http-token-file", "/nonexistent/token"], {}, /--http-token-file: cannot read "\/nonexistent\/token": ENOENT/],
            [["server", "--http-port", "0", "--http-token-file", "/dev/null"], { DEVS_IOT_HTTP_TOKEN: TOKEN }, /give the HTTP token once/],
            [["server", "--http-port", "70000"], {}, /--http-port must be a whole number from 0 to 65535/],
            [["server", "--http-allowed-hosts", "iot.lan"], {}, /--http-allowed-hosts needs --http-port/],
            [["server", "--http-port", "0", "--http-allowed-hosts", "iot.lan,evil.example:80"], {}, /--http-allowed-hosts: "evil.example:80" is not a host name/],
        ] as Array<[string[], Record<string, string>, RegExp]>)
            it(`exit 2 naming the problem: ${args.slice(1).join(" ")}`, async function () {
                const c = cli(args, env)
                running.push(c)
                assert.equal(await within(c.exited, 10000, "exit"), 2)
                assert.match(c.stderr, re)
            })
    })
})

function once(server: Server, event: "disconnect"): Promise<void> {
    return new Promise((resolve) => server.once(event, () => resolve()))
}
