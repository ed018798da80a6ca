// The devs-iot CLI as users run it: child processes, stopped by pid.
import assert from "node:assert/strict"
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { cli, freePort, until, within, type Cli } from "../kit/util.js"

describe("devs-iot CLI", function () {
    this.timeout(30000)
    let running: Cli[] = []
    const run = (args: string[], env: Record<string, string> = {}, cwd?: string) => {
        const c = cli(args, env, cwd)
        running.push(c)
        return c
    }
    afterEach(() => {
        for (const c of running) c.stop()
        running = []
    })

    const BAD: Array<[string[], Record<string, string>, RegExp]> = [
        [["server", "--prot", "1"], {}, /Unknown option '--prot' \(did you mean --port\?\)/],
        // A slip in a variable's name would otherwise leave its setting at the default.
        [["server"], { DEVS_IOT_PROT: "9000" }, /DEVS_IOT_PROT is not a devs-iot setting \(did you mean DEVS_IOT_PORT\?\)/],
        [["client", "--id", "a"], { DEVS_IOT_STRICTIDS: "1" }, /DEVS_IOT_STRICTIDS is not a devs-iot setting \(did you mean DEVS_IOT_STRICT_IDS\?\)/],
        [["server", "--port", "abc"], {}, /--port must be a whole number from 0 to 65535, got "abc"/],
        [["server"], { DEVS_IOT_PORT: "99999" }, /DEVS_IOT_PORT must be a whole number from 0 to 65535, got "99999"/],
        [["server", "--timeout", "5"], {}, /--timeout must be a whole number from 100 to 3600000/],
        [["server", "--app", "nope"], {}, /--app must be one of demo, remote, qos, qos-fast, echo, none, got "nope"/],
        [["server", "--log-level", "loud"], {}, /--log-level must be one of/],
        [["server", "--strict-ids"], {}, /--strict-ids needs a list of ids/],
        [["server"], { DEVS_IOT_JSON: "maybe" }, /DEVS_IOT_JSON must be true or false/],
        [["server", "--max-id-bytes", "100"], {}, /--max-id-bytes must be a whole number from 256 to 65536, got "100"/],
        [["server"], { DEVS_IOT_MAX_PENDING_PER_SOURCE: "-1" }, /DEVS_IOT_MAX_PENDING_PER_SOURCE must be a whole number from 1 to 1000000/],
        [["server", "--max-pending-per-source", "4", "--penalized-pending", "8"], {}, /penalizedPending \(8\) must be at most maxPendingPerSource \(4\)/],
        [["server", "--interval", "5"], {}, /--interval must be a whole number from 100 to 3600000, got "5"/],
        [["server", "--http-port", "70000"], {}, /--http-port must be a whole number from 0 to 65535/],
        [["server"], { DEVS_IOT_SHUTDOWN_TIMEOUT: "0" }, /DEVS_IOT_SHUTDOWN_TIMEOUT must be a whole number from 100 to 600000/],
        [["gateway", "--broker-port", "70000"], {}, /--broker-port must be a whole number from 0 to 65535/],
        [["server", "--encrypt"], {}, /--encrypt acts on keyed ids only: give --keys FILE too/],
        [["gateway", "--allow-plain", "a"], {}, /--allow-plain acts on keyed ids only/],
        [["server"], { DEVS_IOT_PUSH_KEYS: "1" }, /DEVS_IOT_PUSH_KEYS acts on keyed ids only/],
        [["client"], {}, /--id is required/],
        [["client", "--id", ""], {}, /--id: empty id/],
        [["client", "--id", "a", "--port", "0"], {}, /--port must be a whole number from 1 to 65535/],
        [["frobnicate"], {}, /unknown command "frobnicate"/],
    ]
    for (const [args, env, re] of BAD) {
        it(`exit 2 and a message naming the problem: ${[...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...args].join(" ")}`, async function () {
            const c = run(args, env)
            assert.equal(await within(c.exited, 10000, "exit"), 2)
            assert.match(c.stderr, re)
        })
    }

    // The test kit: a wait for a line the process never prints ends with it,
    // telling what it printed then (not what it had printed when the wait began).
    it("a wait for a line ends when the CLI exits without printing it, and tells what it printed", async function () {
        const c = run(["frobnicate"])
        const err = await within(c.waitFor(/never printed/, 60000).then(() => undefined, (e: Error) => e), 20000, "the wait ends with the process")
        assert.match(err?.message ?? "", /not printed: \/never printed\/ in the CLI's stderr \(exited: 2\):\n.*unknown command "frobnicate"/)
    })

    it("--help for each command exits 0 and lists every option with its variable", async function () {
        for (const cmd of ["server", "gateway", "client", "deploy", "sim", "flash"]) {
            const c = run([cmd, "--help"])
            assert.equal(await within(c.exited, 10000, "exit"), 0)
            // Every description starts in the same column (27), after the flag or below it.
            for (const line of c.stdout.split("\n")) {
                const rest = /^  --\S+(?: [A-Z,]+)?(?= |$) *(.*)$/.exec(line)?.[1]
                if (rest) assert.equal(line.length - rest.length, 27, `${cmd}: ${line}`)
            }
            if (cmd === "sim" || cmd === "flash") continue
            assert.match(c.stdout, /--port N/)
            assert.match(c.stdout, /env DEVS_IOT_TIMEOUT/)
            if (cmd === "deploy") assert.match(c.stdout, /^Usage: devs-iot deploy \[options\] image\.devs$/m)
        }
    })

    it("the demo server (npm start) serves a board id, and `devs-iot client` talks to it; SIGTERM exits 0", async function () {
        const server = run(["server", "--app", "demo", "--port", "0", "--host", "127.0.0.1", "--interval", "200", "--json"])
        const port = (await server.waitFor(/"port":(\d+)/, 10000))[1]!
        const client = run(["client", "--id", "1", "--port", port])
        await client.waitFor(/^\[0,\d+\]$/m, 10000, "stdout")
        client.child.stdin!.write('[1,0,30000]\n')
        await server.waitFor(/demo: got \[1,0,30000\] from 1/, 10000)
        process.kill(server.child.pid!, "SIGTERM")
        assert.equal(await within(server.exited, 5000, "server exit"), 0)
        assert.match(server.stderr, /shutting down/)
    })

    it("echo app: the client's stdin comes back on its stdout; settings from the environment", async function () {
        // DEVS_IOT_READ_CHUNK is a tool's (tools/jacdac-port.cjs), no setting of the server's, and no slip.
        const server = run(["server", "--json"], { DEVS_IOT_APP: "echo", DEVS_IOT_PORT: "0", DEVS_IOT_HOST: "127.0.0.1", DEVS_IOT_TIMEOUT: "1000", DEVS_IOT_READ_CHUNK: "1024" })
        const port = (await server.waitFor(/"port":(\d+)/, 10000))[1]!
        assert.match(server.stderr, /"timeout":1000/)
        const client = run(["client", "--id", "x", "--timeout", "1000"], { DEVS_IOT_PORT: port })
        client.child.stdin!.write("one\ntwo\n")
        await client.waitFor(/one\ntwo\n/, 10000, "stdout")
        process.kill(client.child.pid!, "SIGINT")
        assert.equal(await within(client.exited, 5000, "client exit"), 0)
    })

    it("sim: SIGTERM or SIGINT during the image build exits 143 or 130 at once, ends the compiler and leaves nothing in the temp folder", async function () {
        this.timeout(60000)
        for (const [sig, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
            const root = mkdtempSync(join(tmpdir(), "devs-iot-cli-sim-"))
            try {
                const [cwd, tmp] = [join(root, "cwd"), join(root, "tmp")]
                for (const d of [cwd, tmp]) mkdirSync(d)
                const sim = run(["sim", "--id", "h1", "--port", "1"], { TMPDIR: tmp }, cwd)
                await sim.waitFor(/devs-iot sim: building demo/, 10000)
                // Processes whose current folder is in the temp folder: the compiler's.
                const workingIn = () =>
                    readdirSync("/proc").filter((p) => {
                        try {
                            return /^\d+$/.test(p) && readlinkSync(`/proc/${p}/cwd`).startsWith(tmp)
                        } catch {
                            return false
                        }
                    })
                await until(() => workingIn().length > 0, 20000, "the compiler running")
                process.kill(sim.child.pid!, sig)
                assert.equal(await within(sim.exited, 10000, `exit after ${sig}`), code)
                assert.match(sim.stderr, new RegExp(`${sig} before the start was complete`))
                assert.deepEqual(readdirSync(tmp), [], "the temp folder")
                assert.deepEqual(workingIn(), [], "no process left working in the temp folder (the compiler)")
            } finally {
                rmSync(root, { recursive: true, force: true })
            }
        }
    })

    it("sim with nothing listening where the board connects says so (the board's retries are silent); it leaves nothing in the current folder or the temp folder", async function () {
        // It says so once the image is built: a DeviceScript compile of about
        // 5 s of CPU, which a loaded 2-vCPU machine stretches several times.
        this.timeout(120000)
        const port = await freePort()
        const root = mkdtempSync(join(tmpdir(), "devs-iot-cli-sim-"))
        try {
            const [cwd, tmp] = [join(root, "cwd"), join(root, "tmp")]
            for (const d of [cwd, tmp]) mkdirSync(d)
            const sim = run(["sim", "--id", "h1", "--port", String(port)], { TMPDIR: tmp }, cwd)
            await sim.waitFor(new RegExp(`nothing answers at 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\); the board keeps trying`), 100000)
            // The VM has made its flash once it runs the image.
            await sim.waitFor(/self-deployed/, 30000, "stdout")
            process.kill(sim.child.pid!, "SIGINT")
            assert.equal(await within(sim.exited, 10000, "exit after SIGINT"), 0, "stopped by SIGINT: exit 0")
            assert.deepEqual(readdirSync(cwd), [], "the current folder")
            assert.deepEqual(readdirSync(tmp), [], "the temp folder")
        } finally {
            rmSync(root, { recursive: true, force: true })
        }
    })
})
