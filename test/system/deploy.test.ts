// The two ways to run the server in production, checked where the tools are:
// - deploy/devs-iot.service passes `systemd-analyze verify` (skipped, saying
//   so, where systemd-analyze is missing);
// - the Dockerfile builds an image that runs as a non-root user, turns healthy,
//   answers a client, and stops cleanly on `docker stop` (skipped, saying so,
//   where there is no docker command or no Docker daemon).
import assert from "node:assert/strict"
import { execFile } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Client } from "../../src/server/index.js"
import { freePort, within } from "../kit/util.js"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..")

function sh(cmd: string, args: string[], ms: number): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((done) =>
        execFile(cmd, args, { cwd: ROOT, timeout: ms, killSignal: "SIGKILL", maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
            done({ code: err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 127) : 0, stdout, stderr })
        )
    )
}

function skip(ctx: Mocha.Context, why: string): never {
    console.log(`      skipped: ${why}`)
    ctx.skip()
}

describe("deployment files", function () {
    this.timeout(60000)

    it("deploy/devs-iot.service passes systemd-analyze verify, with no warning", async function () {
        const which = await sh("sh", ["-c", "command -v systemd-analyze"], 10000)
        if (which.code !== 0) skip(this, "systemd-analyze is not installed here, so the unit file was not verified")
        let unit = join(ROOT, "deploy/devs-iot.service")
        // verify checks that ExecStart's program exists: use this machine's node where /usr/bin/node is missing.
        let tmp = ""
        if (!existsSync("/usr/bin/node")) {
            tmp = mkdtempSync(join(tmpdir(), "devs-iot-unit-"))
            const text = readFileSync(unit, "utf8").replace("ExecStart=/usr/bin/node ", `ExecStart=${process.execPath} `)
            unit = join(tmp, "devs-iot.service")
            writeFileSync(unit, text)
        }
        try {
            const r = await sh("systemd-analyze", ["verify", unit], 50000)
            assert.equal(r.code, 0, r.stderr)
            assert.equal(r.stderr.trim(), "", "systemd-analyze printed warnings")
        } finally {
            if (tmp) rmSync(tmp, { recursive: true, force: true })
        }
    })

    it("the unit runs the server as a throw-away user with the hardening options, writing only its state folder", function () {
        const text = readFileSync(join(ROOT, "deploy/devs-iot.service"), "utf8")
        for (const line of ["DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "CapabilityBoundingSet=", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service", "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM", "StateDirectory=devs-iot"])
            assert.ok(text.split("\n").includes(line), `${line} is missing`)
        assert.match(text, /^ExecStart=\/usr\/bin\/node \/opt\/devs-iot\/node_modules\/devs-iot\/bin\/devs-iot\.js server$/m)
    })

    describe("Docker image", function () {
        this.timeout(900000)
        const tag = `devs-iot-test:${process.pid}`
        const name = `devs-iot-test-${process.pid}`
        let built = false

        before(async function () {
            const which = await sh("sh", ["-c", "command -v docker"], 10000)
            if (which.code !== 0) skip(this, "no docker command here, so the image was not built or run")
            const info = await sh("docker", ["info", "--format", "{{.ServerVersion}}"], 20000)
            if (info.code !== 0) skip(this, `no Docker daemon reachable here (docker info: ${info.stderr.trim().split("\n").pop()}), so the image was not built or run`)
            const b = await sh("docker", ["build", "-t", tag, "."], 840000)
            assert.equal(b.code, 0, b.stdout + b.stderr)
            built = true
        })

        after(async function () {
            await sh("docker", ["rm", "-f", name], 60000)
            if (built) await sh("docker", ["rmi", "-f", tag], 60000)
        })

        it("runs as a non-root user", async function () {
            const r = await sh("docker", ["run", "--rm", "--entrypoint", "id", tag, "-u"], 60000)
            assert.equal(r.code, 0, r.stderr)
            assert.notEqual(r.stdout.trim(), "0")
        })

        it("turns healthy, answers a client with a qos line, and exits 0 on docker stop", async function () {
            const port = await freePort()
            const run = await sh("docker", ["run", "-d", "--name", name, "-p", `127.0.0.1:${port}:8123`, "--health-interval", "1s", "--health-start-period", "1s", tag, "server", "--app", "echo"], 60000)
            assert.equal(run.code, 0, run.stderr)
            const deadline = Date.now() + 60000
            for (;;) {
                const h = await sh("docker", ["inspect", "--format", "{{.State.Health.Status}}", name], 10000)
                if (h.stdout.trim() === "healthy") break
                assert.ok(Date.now() < deadline, `not healthy within 60 s: ${h.stdout.trim()}`)
                await new Promise((r) => setTimeout(r, 500)) // docker has no event for this we can wait on
            }
            const client = new Client({ id: "docker-test", host: "127.0.0.1", port }).start()
            try {
                await within(client.write("hello, container"), 30000, "the write's ACK")
                assert.equal(await within(client.readline(), 30000, "the echo"), "hello, container")
            } finally {
                await client.close()
            }
            const stop = await sh("docker", ["stop", "-t", "10", name], 60000)
            assert.equal(stop.code, 0, stop.stderr)
            const exit = await sh("docker", ["inspect", "--format", "{{.State.ExitCode}}", name], 10000)
            assert.equal(exit.stdout.trim(), "0")
            const logs = await sh("docker", ["logs", name], 10000)
            assert.match(logs.stdout + logs.stderr, /link up/)
            assert.match(logs.stdout + logs.stderr, /no longer accepting/)
        })
    })
})
