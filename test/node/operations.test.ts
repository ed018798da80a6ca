// Running devs-iot for real: what an operator sees in the logs (dated lines,
// one line per link up and down, "still retrying" with the next delay), a
// graceful shutdown on SIGTERM, `devs-iot --version`, and `devs-iot flash`'s
// argument handling and the devs commands it would run (--dry-run: flashing
// needs a board and internet).
import assert from "node:assert/strict"
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { spawnSync } from "node:child_process"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pino } from "pino"
import { Client, Server, type Logger } from "../../src/server/index.js"
import { cleanup, cli, closeAll, freePort, onCleanup, until, within, type Cli } from "../kit/util.js"

interface Rec {
    level: number
    msg: string
    [k: string]: unknown
}

// A pino logger that keeps its records, for the library's log lines.
function recorder(): { logger: Logger; records: Rec[]; next(re: RegExp, ms: number): Promise<Rec> } {
    const records: Rec[] = []
    const waiters: Array<() => void> = []
    const logger = pino({ level: "debug", base: undefined }, {
        write(s: string) {
            records.push(JSON.parse(s) as Rec)
            for (const w of [...waiters]) w()
        },
    })
    const next = (re: RegExp, ms: number) =>
        within(
            new Promise<Rec>((resolve) => {
                const check = () => {
                    const r = records.find((x) => re.test(x.msg))
                    if (r) {
                        waiters.splice(waiters.indexOf(check), 1)
                        resolve(r)
                    }
                }
                waiters.push(check)
                check()
            }),
            ms,
            `a log line ${re}; got:\n${records.map((r) => r.msg).join("\n")}`
        )
    return { logger, records, next }
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..")
const jsonLines = (s: string) => s.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Rec)

describe("operations: logs, shutdown, version, flash", function () {
    this.timeout(30000)
    let running: Cli[] = []
    const run = (args: string[], env: Record<string, string> = {}) => {
        const c = cli(args, env)
        running.push(c)
        return c
    }
    afterEach(async () => {
        for (const c of running) c.stop()
        running = []
        await closeAll()
    })

    it("readable log lines carry the date and time (UTC); one line when a link comes up and one when it goes down, with the id, address and reason", async function () {
        const server = run(["server", "--port", "0", "--host", "127.0.0.1", "--app", "echo"])
        const port = Number((await server.waitFor(/"port":(\d+)/, 10000))[1])
        assert.match(server.stderr, /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] INFO: listening/m)
        const client = cleanup(new Client({ id: "ops-1", port }).start())
        await client.connected()
        await server.waitFor(/link up \{"client":"ops-1","address":"127\.0\.0\.1:\d+","peer":"devs-iot","connects":1\}/, 10000)
        await client.close()
        await server.waitFor(/link down \{"client":"ops-1","address":"127\.0\.0\.1:\d+","reason":"[^"]+"\}/, 10000)
        assert.equal(server.stderr.match(/link up/g)?.length, 1, server.stderr)
        assert.equal(server.stderr.match(/link down/g)?.length, 1, server.stderr)
    })

    it("--json log lines are JSON with an ISO 8601 time, and the same link lines", async function () {
        const server = run(["server", "--port", "0", "--host", "127.0.0.1", "--json"])
        const port = Number((await server.waitFor(/"port":(\d+)/, 10000))[1])
        const client = cleanup(new Client({ id: "ops-2", port }).start())
        await client.connected()
        await server.waitFor(/"msg":"link up"/, 10000)
        const recs = jsonLines(server.stderr)
        for (const r of recs) assert.match(String(r["time"]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
        const up = recs.find((r) => r.msg === "link up")!
        assert.equal(up["client"], "ops-2")
        assert.match(String(up["address"]), /^127\.0\.0\.1:\d+$/)
    })

    it("the Node client logs its link up and down, and while the server is away says at info that it is still retrying, with the next delay", async function () {
        const port = await freePort() // nothing listens here
        const log = recorder()
        const client = cleanup(new Client({ id: "ops-3", port, backoffFirst: 1, backoffCap: 2, logger: log.logger }).start())
        const first = await log.next(/^connect to 127\.0\.0\.1:\d+ failed: .*; retrying in \d+ ms$/, 10000)
        assert.equal(first.level, 30) // info
        const still = await log.next(/^still retrying: connect to .* failed: .*; next attempt in \d+ ms$/, 20000)
        assert.equal(still.level, 30)
        assert.equal(still["failures"], 8)
        assert.equal(typeof still["retryIn"], "number")
        // Between them, the failures are logged at debug only: an outage does not fill the log.
        const infos = log.records.filter((r) => r.level >= 30 && /connect to/.test(r.msg))
        assert.ok(infos.length <= 3, `${infos.length} info lines for ${still["failures"]} failures`)
        // The server comes: one "link up"; it goes: one "link down" with its reason.
        const server = cleanup(new Server({ port, host: "127.0.0.1" }))
        await server.listen()
        await client.connected()
        const up = await log.next(/^link up$/, 10000)
        assert.equal(up["server"], `127.0.0.1:${port}`)
        await server.close()
        const down = await log.next(/^link down$/, 10000)
        assert.equal(typeof down["reason"], "string")
        assert.notEqual(down["reason"], "")
    })

    it("SIGTERM: the server stops accepting, closes each link with a reason in the log, and exits 0 in bounded time, also with a peer that never reads", async function () {
        const server = run(["server", "--port", "0", "--host", "127.0.0.1", "--app", "echo", "--json"])
        const port = Number((await server.waitFor(/"port":(\d+)/, 10000))[1])
        const client = cleanup(new Client({ id: "sd-1", port }).start())
        await client.write("before the signal")
        assert.equal(await within(client.readline(), 10000, "the echo"), "before the signal")
        // A raw v1 peer that sends its id and then never reads again.
        const raw = connect({ port, host: "127.0.0.1" })
        cleanup({ close: () => void raw.destroy() })
        raw.write("sd-raw\n\n")
        await server.waitFor(/"msg":"link up","client":"sd-raw"|"client":"sd-raw".*"msg":"link up"|link up.*sd-raw/, 10000)
        raw.pause()
        const down = new Promise<string>((resolve) => client.on("status", (up, reason) => !up && resolve(reason ?? "")))
        process.kill(server.child.pid!, "SIGTERM")
        assert.equal(await within(server.exited, 15000, "the server's exit after SIGTERM"), 0, server.stderr)
        await within(down, 5000, "the client seeing its link down")
        const recs = jsonLines(server.stderr)
        const closing = recs.find((r) => /^no longer accepting; closing 2 links$/.test(r.msg))
        assert.ok(closing, server.stderr)
        const downs = recs.filter((r) => r.msg === "link down")
        assert.deepEqual(downs.map((r) => [r["client"], r["reason"]]).sort(), [["sd-1", "server shutting down"], ["sd-raw", "server shutting down"]])
        assert.ok(recs.some((r) => r.msg === "closed"))
    })

    it("SIGTERM right after the application read a line: that line's ACK still leaves before the link closes", async function () {
        const server = cleanup(new Server({ port: 0, host: "127.0.0.1" }))
        await server.listen()
        const client = cleanup(new Client({ id: "sd-2", port: server.port }).start())
        const conn = await within(server.clientConn("sd-2"), 10000, "sd-2 connected")
        let closing: Promise<void> | undefined
        const reading = (async () => {
            for await (const line of conn) {
                assert.equal(line, "read, then the server stops")
                // The ACK of a read line leaves at the next setImmediate; the close comes first.
                closing = server.close()
                break
            }
        })()
        await within(client.write("read, then the server stops"), 10000, "the write's ACK (it must not wait for a server that is gone)")
        await reading
        await closing
    })

    it("SIGTERM under load with --state (qos lines in flight both ways): exits 0 within the bound; after a restart every line is echoed, once, in order", async function () {
        const dir = mkdtempSync(join(tmpdir(), "devs-iot-sigterm-state-"))
        onCleanup(() => rmSync(dir, { recursive: true, force: true }))
        const port = await freePort()
        const args = ["server", "--port", String(port), "--host", "127.0.0.1", "--app", "echo", "--state", dir, "--json"]
        const first = run(args)
        await first.waitFor(/"msg":"ready"/, 10000)
        const client = cleanup(new Client({ id: "sd-load", port, timeout: 1000 }).start())
        const echoes: string[] = []
        void (async () => {
            for (;;) echoes.push(await client.readline())
        })().catch(() => {})
        const lines = Array.from({ length: 300 }, (_, i) => `load ${i}`)
        const writes = Promise.all(lines.map((l) => client.write(l, { wait: false })))
        await until(() => echoes.length >= 30, 20000, "30 echoes before the signal")
        process.kill(first.child.pid!, "SIGTERM")
        assert.equal(await within(first.exited, 15000, "the server's exit after SIGTERM"), 0, first.stderr)
        const second = run(args)
        await second.waitFor(/"msg":"ready"/, 10000)
        await within(writes, 30000, () => `every write ACKed (echoes: ${echoes.length})`)
        await until(() => echoes.length >= lines.length, 30000, `every line echoed (got ${echoes.length})`)
        assert.deepEqual(echoes, lines)
    })

    it("a second SIGINT or SIGTERM during the shutdown exits at once with 128 + its number (130, 143), and says so", async function () {
        const server = run(["server", "--port", "0", "--host", "127.0.0.1", "--app", "echo", "--json", "--shutdown-timeout", "600000"])
        const port = Number((await server.waitFor(/"port":(\d+)/, 10000))[1])
        // A v1 peer that never reads: its link's close waits for the socket.
        const raw = connect({ port, host: "127.0.0.1" })
        cleanup({ close: () => void raw.destroy() })
        raw.write("sd-stuck\n\n")
        await server.waitFor(/link up.*sd-stuck|sd-stuck.*link up/, 10000)
        raw.pause()
        // Both at once: this process answers nothing in between, so the
        // first shutdown cannot have finished when the second signal comes.
        process.kill(server.child.pid!, "SIGTERM")
        process.kill(server.child.pid!, "SIGINT")
        // The kernel hands pending signals over lowest first: SIGINT may come first.
        const code = await within(server.exited, 15000, "the server's exit after the second signal")
        const second = code === 130 ? "SIGINT" : code === 143 ? "SIGTERM" : `exit ${code}`
        assert.match(server.stderr, new RegExp(`"signal":"${second}","msg":"${second} during the shutdown: exiting now`))
    })

    it("SIGINT or SIGTERM while the start waits for a state folder another process holds exits at once with 130 or 143, and says so", async function () {
        for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
            const dir = mkdtempSync(join(tmpdir(), "devs-iot-start-signal-"))
            onCleanup(() => rmSync(dir, { recursive: true, force: true }))
            mkdirSync(join(dir, "owner.lock")) // another start taking the folder: this one waits up to 5 s
            const server = run(["server", "--port", "0", "--host", "127.0.0.1", "--state", dir, "--json"])
            await server.waitFor(/another process is taking it .*: waiting up to \d+ ms/, 10000)
            process.kill(server.child.pid!, sig)
            assert.equal(await within(server.exited, 10000, `the server's exit after ${sig}`), code, server.stderr)
            assert.match(server.stderr, new RegExp(`"signal":"${sig}","msg":"${sig} before the start was complete: exiting now"`))
        }
    })

    it("the client too: SIGINT or SIGTERM while its start waits for a state folder another process holds exits at once with 130 or 143, and says so", async function () {
        for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
            const dir = mkdtempSync(join(tmpdir(), "devs-iot-start-signal-"))
            onCleanup(() => rmSync(dir, { recursive: true, force: true }))
            mkdirSync(join(dir, "owner.lock")) // another start taking the folder: this one waits up to 5 s
            const client = run(["client", "--id", "start-sig", "--port", String(await freePort()), "--state", dir, "--json"])
            await client.waitFor(/another process is taking it .*: waiting up to \d+ ms/, 10000)
            process.kill(client.child.pid!, sig)
            assert.equal(await within(client.exited, 10000, `the client's exit after ${sig}`), code, client.stderr)
            assert.match(client.stderr, new RegExp(`"signal":"${sig}","msg":"${sig} before the start was complete: exiting now"`))
        }
    })

    it("SIGHUP reloads only the key file: without --keys the server says so and carries on, its links up", async function () {
        const server = run(["server", "--port", "0", "--host", "127.0.0.1", "--app", "echo", "--json"])
        const port = Number((await server.waitFor(/"port":(\d+)/, 10000))[1])
        const client = cleanup(new Client({ id: "hup-1", port }).start())
        await within(client.connected(), 10000, "hup-1 connected")
        const connects = client.connects
        process.kill(server.child.pid!, "SIGHUP")
        await server.waitFor(/"msg":"SIGHUP: no --keys file to reload"/, 10000)
        await client.write("after SIGHUP")
        assert.equal(await within(client.readline(), 10000, "the echo"), "after SIGHUP")
        assert.equal(client.connects, connects, "the link stayed up")
        process.kill(server.child.pid!, "SIGTERM")
        assert.equal(await within(server.exited, 15000, "the server's exit after SIGTERM"), 0, server.stderr)
    })

    it("devs-iot --version prints the package's version", async function () {
        const c = run(["--version"])
        assert.equal(await within(c.exited, 10000, "exit"), 0)
        assert.match(c.stdout, /^\d+\.\d+\.\d+\n$/)
    })

    describe("devs-iot flash", function () {
        let dir = ""
        before(() => {
            dir = mkdtempSync(join(tmpdir(), "devs-iot-flash-test-"))
            writeFileSync(join(dir, ".env.defaults"), "IOT_PORT=8123\n")
            writeFileSync(join(dir, ".env.local"), "WIFI_SSID=lab\nWIFI_PWD=secret\n# the server\nIOT_HOST=192.168.1.10\n")
        })
        after(() => rmSync(dir, { recursive: true, force: true }))

        it("--dry-run: bundles the app with the settings and the pinned runtime, flashes the image, then tails the log", async function () {
            const c = run(["flash", "--dry-run", "--app", "qos", "--serial", "/dev/ttyUSB0", "--settings", dir])
            assert.equal(await within(c.exited, 10000, "exit"), 0, c.stderr)
            const cmds = c.stdout.split("\n").filter((l) => l.startsWith("npx devs "))
            assert.equal(cmds.length, 3, c.stdout)
            assert.match(cmds[0]!, /^npx devs bundle src\/main-qos\.ts --board devs_iot_esp32_devkit_c --flash-file \S+\/devs-iot-qos-devs_iot_esp32_devkit_c\.bin$/)
            assert.match(cmds[1]!, /^npx devs flash esp32 --board devs_iot_esp32_devkit_c --file \S+\/devs-iot-qos-devs_iot_esp32_devkit_c\.bin --port \/dev\/ttyUSB0$/)
            assert.equal(cmds[2], "npx devs devtools --serial --logging")
            assert.match(c.stdout, /DeviceScript 2\.16\.4 runtime/)
            assert.match(c.stdout, /\.env\.defaults and .*\.env\.local/)
        })

        it("--dry-run --no-monitor: no log tail; the default app is the demo", async function () {
            const c = run(["flash", "--dry-run", "--no-monitor"], { DEVS_IOT_SETTINGS: dir })
            assert.equal(await within(c.exited, 10000, "exit"), 0, c.stderr)
            const cmds = c.stdout.split("\n").filter((l) => l.startsWith("npx devs "))
            assert.equal(cmds.length, 2, c.stdout)
            assert.match(cmds[0]!, /^npx devs bundle src\/main\.ts /)
        })

        const BAD: Array<[string[], (d: string) => string, RegExp]> = [
            [["--app", "nope"], (d) => d, /--app must be one of demo, remote, qos, qos-fast, got "nope"/],
            [["--board", "../x"], (d) => d, /--board must be a DeviceScript board id/],
            [[], () => tmpdir(), /no settings in .*: write IOT_HOST/],
            [["--serial", "/dev/ttyACM0", "--board", "esp32_devkit_c"], (d) => d, /--serial needs a board with a board file/],
        ]
        for (const [args, where, re] of BAD)
            it(`exit 2 and a message naming the problem: flash ${args.join(" ")}`, async function () {
                const c = run(["flash", "--dry-run", "--settings", where(dir), ...args])
                assert.equal(await within(c.exited, 10000, "exit"), 2)
                assert.match(c.stderr, re)
            })

        it("exit 2 when the settings lack IOT_HOST or hold a bad IOT_KEY", async function () {
            const d = mkdtempSync(join(tmpdir(), "devs-iot-flash-bad-"))
            try {
                writeFileSync(join(d, ".env.local"), "WIFI_SSID=lab\n")
                let c = run(["flash", "--dry-run", "--settings", d])
                assert.equal(await within(c.exited, 10000, "exit"), 2)
                assert.match(c.stderr, /IOT_HOST is not set in .*\.env\.local/)
                writeFileSync(join(d, ".env.local"), "IOT_HOST=10.0.0.1\nIOT_KEY=abc\n")
                c = run(["flash", "--dry-run", "--settings", d])
                assert.equal(await within(c.exited, 10000, "exit"), 2)
                assert.match(c.stderr, /IOT_KEY in .* must be 64 lowercase hex digits/)
            } finally {
                rmSync(d, { recursive: true, force: true })
            }
        })

        it("exit 2 naming the file and line of each setting DeviceScript's .env parser would drop or change (a # anywhere in the line, spaces around the name, a password that reads as a number), also with --dry-run", async function () {
            const d = mkdtempSync(join(tmpdir(), "devs-iot-flash-env-"))
            try {
                writeFileSync(join(d, ".env.defaults"), "# a comment line is fine\nIOT_PORT=8123\nIOT_TIMEOUT = 2000\n")
                writeFileSync(join(d, ".env.local"), "WIFI_SSID=lab\nWIFI_PWD=12345678\nIOT_HOST=192.168.1.10 # my server\n")
                for (const dry of [["--dry-run"], []]) {
                    const c = run(["flash", ...dry, "--settings", d])
                    assert.equal(await within(c.exited, 10000, "exit"), 2, c.stdout + c.stderr)
                    assert.match(c.stderr, /\.env\.local line 3: DeviceScript's \.env parser drops every line that contains "#", so IOT_HOST never reaches the board/)
                    assert.match(c.stderr, /\.env\.local line 2: WIFI_PWD arrives as number, not text\. Write it as a JSON string: WIFI_PWD="12345678"/)
                    assert.match(c.stderr, /\.env\.defaults line 3: spaces around the name/)
                    assert.doesNotMatch(c.stderr, /line 1:|\.env\.defaults line 2|\.env\.local line 1/)
                    assert.equal(c.stdout, "", "no devs command is printed or run")
                }
            } finally {
                rmSync(d, { recursive: true, force: true })
            }
        })
    })
})

describe("package scripts", function () {
    this.timeout(30000)
    // tools/prepare.mjs alone in a folder without node_modules: what a clone sees after `npm ci --omit=dev`.
    function prepareIn(withBuild: boolean): { code: number | null; stderr: string } {
        const d = mkdtempSync(join(tmpdir(), "devs-iot-prepare-"))
        try {
            mkdirSync(join(d, "tools"))
            copyFileSync(join(ROOT, "tools/prepare.mjs"), join(d, "tools/prepare.mjs"))
            writeFileSync(join(d, "package.json"), JSON.stringify({ name: "x", version: "0.0.0", type: "module" }))
            if (withBuild) {
                mkdirSync(join(d, "dist/src/server/cli"), { recursive: true })
                writeFileSync(join(d, "dist/src/server/cli/main.js"), "")
            }
            const r = spawnSync(process.execPath, [join(d, "tools/prepare.mjs")], { cwd: d, encoding: "utf8", timeout: 20000 })
            return { code: r.status, stderr: r.stderr }
        } finally {
            rmSync(d, { recursive: true, force: true })
        }
    }

    it("prepare without dev dependencies keeps an existing build (npm ci --omit=dev in a built clone succeeds)", function () {
        const r = prepareIn(true)
        assert.equal(r.code, 0, r.stderr)
        assert.match(r.stderr, /keeping the build/)
    })

    it("prepare without dev dependencies and without a build says what to do", function () {
        const r = prepareIn(false)
        assert.equal(r.code, 1)
        assert.match(r.stderr, /run `npm ci` \(with dev dependencies\) once, or install the packed package/)
    })
})
