// The package as a user gets it: `npm pack`, then the tarball installed into
// an empty folder without dev dependencies, then `npx devs-iot server` on a
// free port and `npx devs-iot client` against it, a qos line there and back.
// Then a TypeScript user's view: the samples in the docs and a consumer
// compiled against the installed types (strict; nodenext and bundler), the
// consumer run; and a CommonJS require.
// Needs the build (`npm run build`, which the test commands run first) and
// the runtime dependencies in npm's cache (`npm ci` puts them there).
import assert from "node:assert/strict"
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { freePort, within } from "../kit/util.js"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..")
// The docs whose code samples a user would paste: each file's ts and js
// blocks together make one module (the README's second block goes on from its first).
const SAMPLE_DOCS = ["README.md", "docs/api.md", "docs/operations.md"]

function samples(doc: string): string {
    const blocks = [...readFileSync(join(ROOT, doc), "utf8").matchAll(/^```(?:ts|js)\n([\s\S]*?)^```$/gm)].map((m) => m[1]!)
    assert.ok(blocks.length > 0, `${doc} has no ts or js sample`)
    return blocks.join("\n") + "\nexport {}\n"
}

// A user's program: Server and Client on loopback, qos lines both ways, the
// events, an error's code, close.
const CONSUMER = `import { Server, Client, Connection, LinkError, type LinkErrorCode, type LinkStats, type Peer, type Report, type Warning } from "devs-iot"

const server = new Server({ port: 0, host: "127.0.0.1", expected: ["c1"] })
const events: string[] = []
server.on("connect", (conn: Connection) => events.push("connect " + conn.id))
server.on("warning", (w: Warning) => events.push("warning " + w.code))
await server.listen()
const client = new Client({ id: "c1", host: "127.0.0.1", port: server.port }).start()
await client.connected()
await client.write("up", { qos: true, wait: true })
const conn = await server.clientConn("c1")
conn.on("report", (r: Report) => events.push("report " + r.firmware))
const up: string = await conn.readline()
await conn.write("down")
const down = await client.readline()
const peer: Peer | undefined = conn.peer
const stats: LinkStats = client.stats
let code: LinkErrorCode | undefined
try {
    await client.write("a\\nb")
} catch (e) {
    if (e instanceof LinkError) code = e.code
}
await client.close()
await server.close()
console.log(JSON.stringify({ up, down, code, events, peer, received: stats.received }))
`

const NPM_ENV = { ...process.env, NO_UPDATE_NOTIFIER: "1", npm_config_update_notifier: "false", NO_COLOR: "1" }

function sh(cmd: string, args: string[], cwd: string, ms: number): Promise<string> {
    return new Promise((done, fail) =>
        execFile(cmd, args, { cwd, env: NPM_ENV, timeout: ms, killSignal: "SIGKILL", maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
            err ? fail(new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${stdout}${stderr}`)) : done(stdout)
        )
    )
}

interface Proc {
    child: ChildProcess
    out: { stdout: string; stderr: string }
    exited: Promise<number | null>
    waitFor(re: RegExp, stream: "stdout" | "stderr", ms: number): Promise<void>
    kill(): void
}

function start(cmd: string, args: string[], cwd: string): Proc {
    const child = spawn(cmd, args, { cwd, env: NPM_ENV, stdio: ["pipe", "pipe", "pipe"] })
    const out = { stdout: "", stderr: "" }
    const waiters: Array<() => void> = []
    for (const s of ["stdout", "stderr"] as const)
        child[s]!.on("data", (b: Buffer) => {
            out[s] += b.toString()
            for (const w of [...waiters]) w()
        })
    return {
        child,
        out,
        exited: new Promise((r) => child.on("exit", (code) => r(code))),
        waitFor: (re, stream, ms) =>
            within(
                new Promise<void>((r) => {
                    const check = () => {
                        if (re.test(out[stream])) {
                            waiters.splice(waiters.indexOf(check), 1)
                            r()
                        }
                    }
                    waiters.push(check)
                    check()
                }),
                ms,
                `${re} in ${cmd} ${args.join(" ")}'s ${stream}:\n${out[stream]}`
            ),
        kill: () => {
            if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, "SIGKILL")
        },
    }
}

describe("the packed package, installed without dev dependencies", function () {
    this.timeout(300000)
    let tmp = ""
    let app = ""
    let tarball = ""
    const procs: Proc[] = []

    before(async function () {
        tmp = mkdtempSync(join(tmpdir(), "devs-iot-pack-"))
        // The build ran before the tests; --ignore-scripts keeps `prepare` from building it again.
        const json = await sh("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", tmp], ROOT, 120000)
        const info = JSON.parse(json) as Array<{ filename: string; files: Array<{ path: string }> }>
        tarball = join(tmp, info[0]!.filename)
        files = info[0]!.files.map((f) => f.path)
        app = join(tmp, "app")
        await sh("mkdir", ["-p", app], tmp, 5000)
        writeFileSync(join(app, "package.json"), JSON.stringify({ name: "an-app", version: "1.0.0", private: true }) + "\n")
        await sh("npm", ["install", "--omit=dev", "--prefer-offline", "--no-audit", "--no-fund", tarball], app, 240000)
    })

    after(async function () {
        for (const p of procs) p.kill()
        if (tmp) rmSync(tmp, { recursive: true, force: true })
    })

    let files: string[] = []

    it("holds what runs and what a user reads, and no tests or sources of the server", function () {
        for (const f of ["dist/src/server/index.js", "dist/src/server/index.d.ts", "dist/src/server/cli/main.js", "bin/devs-iot.js", "build/devs/demo.devs", "boards/devs_iot_esp32_devkit_c.board.json", "LICENSE", "README.md", "docs/protocol.md", "examples/server-and-client.mjs", "package.json"])
            assert.ok(files.includes(f), `${f} is not in the package`)
        for (const f of ["src/server/dashboard/index.html", "src/server/dashboard/dashboard.js", "src/server/dashboard/dashboard.css"]) assert.ok(files.includes(f), `${f} (the dashboard's page) is not in the package`)
        const stray = files.filter((f) => f.startsWith("dist/test/") || f.startsWith("dist/bench/") || f.startsWith("test/") || (f.startsWith("src/server/") && !f.startsWith("src/server/dashboard/")) || f.endsWith(".map") || f.startsWith("build/devs/shared-tests"))
        assert.deepEqual(stray, [])
    })

    it("no shipped .js names a source map the package does not hold (bundlers' source-map loaders would warn)", function () {
        const missing: string[] = []
        for (const f of files.filter((f) => /\.[cm]?js$/.test(f))) {
            const m = /^\/\/# sourceMappingURL=(\S+)\s*$/m.exec(readFileSync(join(app, "node_modules/devs-iot", f), "utf8"))
            if (!m || m[1]!.startsWith("data:")) continue
            const map = join(dirname(f), m[1]!)
            if (!files.includes(map)) missing.push(`${f} -> ${map}`)
        }
        assert.deepEqual(missing, [])
    })

    it("installs no dev dependency and runs no build script at install", function () {
        const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string>; private?: boolean }
        assert.equal(pkg.scripts["postinstall"], undefined, "postinstall would run tsc, a dev dependency, at the user's install")
        assert.equal(pkg.private, undefined)
        const lock = JSON.parse(readFileSync(join(app, "package-lock.json"), "utf8")) as { packages: Record<string, unknown> }
        const installed = Object.keys(lock.packages).filter((p) => p !== "")
        for (const dev of ["typescript", "mocha", "fast-check", "@devicescript/cli"])
            assert.ok(!installed.includes(`node_modules/${dev}`), `${dev} was installed`)
        assert.ok(installed.includes("node_modules/pino"))
    })

    it("`npx devs-iot --version` prints the package's version", async function () {
        const out = await sh("npx", ["--no", "--", "devs-iot", "--version"], app, 60000)
        const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }
        assert.equal(out.trim(), version)
    })

    it("`devs-iot server --state` serves its dashboard and metrics and answers `npx devs-iot client`: a qos line there and back", async function () {
        const port = await freePort()
        // What `npx devs-iot` runs, started directly: npx does not pass SIGTERM on, and the pid must be the server's.
        const httpPort = await freePort()
        // --state: lmdb loads its prebuilt binary without its install script (npm 11 does not run it unapproved).
        const server = start(join(app, "node_modules/.bin/devs-iot"), ["server", "--host", "127.0.0.1", "--port", String(port), "--app", "echo", "--http-host", "127.0.0.1", "--http-port", String(httpPort), "--state", join(tmp, "state")], app)
        procs.push(server)
        await server.waitFor(/ready/, "stderr", 60000)
        assert.match(server.out.stderr, /delivery state in /)
        // The HTTP side serves its dashboard and metrics from the installed package too.
        for (const [path, want] of [["/", /<html/i], ["/dashboard.js", /./], ["/metrics", /devs_iot_/]] as const) {
            const r = await within(fetch(`http://127.0.0.1:${httpPort}${path}`), 10000, `GET ${path}`)
            assert.equal(r.status, 200, `GET ${path}`)
            assert.match(await r.text(), want, `GET ${path}`)
        }
        const client = start("npx", ["--no", "--", "devs-iot", "client", "--id", "pack-test", "--host", "127.0.0.1", "--port", String(port)], app)
        procs.push(client)
        client.child.stdin!.write("hello from the packed package\n")
        await client.waitFor(/^hello from the packed package$/m, "stdout", 60000)
        client.child.stdin!.end() // the client exits once stdin has ended and its lines are delivered
        assert.equal(await within(client.exited, 30000, "the client's exit"), 0, client.out.stderr)
        process.kill(server.child.pid!, "SIGTERM")
        assert.equal(await within(server.exited, 30000, "the server's exit after SIGTERM"), 0, server.out.stderr)
    })

    it("`devs-iot sim` without the DeviceScript tools says what to install, in one line, and exits 1", function () {
        const r = spawnSync(join(app, "node_modules/.bin/devs-iot"), ["sim", "--id", "1"], { cwd: app, encoding: "utf8", timeout: 60000 })
        assert.equal(r.status, 1, r.stderr)
        assert.match(r.stderr, /\ndevs-iot sim: this command needs the DeviceScript tools: npm install --save-dev @devicescript\/cli@[0-9.]+\n$/)
        assert.doesNotMatch(r.stderr, /\n +at /, "no stack trace")
    })

    it("the docs' code samples and a TypeScript consumer compile, strict, against the installed types; the consumer runs", async function () {
        // What a TypeScript user adds: the compiler (the repository's) and Node's types.
        const { version } = JSON.parse(readFileSync(join(ROOT, "node_modules/@types/node/package.json"), "utf8")) as { version: string }
        await sh("npm", ["install", "--save-dev", "--prefer-offline", "--no-audit", "--no-fund", `@types/node@${version}`], app, 120000)
        const dir = join(app, "ts")
        mkdirSync(dir)
        writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }) + "\n")
        const files = SAMPLE_DOCS.map((doc) => {
            const f = join(dir, doc.replace(/^docs\//, "").replace(/\.md$/, ".ts").toLowerCase())
            writeFileSync(f, samples(doc))
            return f
        })
        writeFileSync(join(dir, "consumer.ts"), CONSUMER)
        // A Node project's settings: no DOM library, and the types of every package checked (skipLibCheck off, the default).
        const tsc = [join(ROOT, "node_modules/typescript/bin/tsc"), "--strict", "--target", "ES2022", "--lib", "ES2022", "--types", "node", "--skipLibCheck", "false"]
        const all = [...files, join(dir, "consumer.ts")]
        await sh(process.execPath, [...tsc, "--module", "esnext", "--moduleResolution", "bundler", "--noEmit", ...all], dir, 120000)
        await sh(process.execPath, [...tsc, "--module", "nodenext", "--moduleResolution", "nodenext", "--outDir", join(dir, "out"), ...all], dir, 120000)
        const out = await sh(process.execPath, [join(dir, "out/consumer.js")], dir, 30000)
        assert.deepEqual(JSON.parse(out), { up: "up", down: "down", code: "ENEWLINE", events: ["connect c1"], peer: "devs-iot", received: 1 })
    })

    it("a CommonJS require gets the same exports, where Node can require ES modules", async function () {
        if ((process.features as unknown as Record<string, unknown>)["require_module"] !== true) this.skip()
        const out = await sh(process.execPath, ["-e", 'const m = require("devs-iot"); console.log(typeof m.Server, typeof m.Client, typeof m.LinkError)'], app, 30000)
        assert.equal(out.trim(), "function function function")
    })

    it("the installed library imports by its name, with its types", async function () {
        const out = await sh(process.execPath, ["--input-type=module", "-e", 'const m = await import("devs-iot"); console.log(typeof m.Server, typeof m.Client, typeof m.LinkError, typeof m.HttpStatus, typeof m.requestDeploy)'], app, 30000)
        assert.equal(out.trim(), "function function function function function")
        const types = readFileSync(join(app, "node_modules/devs-iot/dist/src/server/index.d.ts"), "utf8")
        assert.match(types, /export \{ Server/)
        assert.match(types, /export \{ requestDeploy \}/)
        // Node's types before TypeScript 5.7 have no generic Buffer: a declaration
        // that says Buffer<...> fails there (tsc infers it where a type is not written).
        const generic = files.filter((f) => f.endsWith(".d.ts") && /\bBuffer</.test(readFileSync(join(app, "node_modules/devs-iot", f), "utf8")))
        assert.deepEqual(generic, [])
    })

    it("the installed types hold no member that only our own modules call (@internal, stripped)", function () {
        const internal: Record<string, string[]> = {
            "server.d.ts": ["cfg", "keyedIds", "isKeyed", "keysPushed", "stateWrites", "refusals"],
            "connection.d.ts": ["everAuthenticated", "mayTakeOver", "hasSocket", "adopt", "setClaim", "pushKey", "revoke", "shutdown"],
            "gateway.d.ts": ["backoffFirst", "backoffCap", "counts", "continuous", "epochs", "boardEpochs", "warn", "mqttAccess", "recordEpoch", "recordBoardEpoch", "restartLink"],
            "fleet.d.ts": ["countAuthFailure", "boardLog", "boardException"],
            "http.d.ts": ["metrics"],
            "driver.d.ts": ["traffic", "onRoundTrip", "bounded", "peerLineLimit"],
        }
        for (const [file, names] of Object.entries(internal)) {
            const text = readFileSync(join(app, "node_modules/devs-iot/dist/src/server", file), "utf8")
            const shown = names.filter((n) => new RegExp(`^\\s+(readonly |get )?${n}[(:?]`, "m").test(text))
            assert.deepEqual(shown, [], `${file} declares them`)
        }
    })
})
