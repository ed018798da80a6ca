// A real Mosquitto broker for the gateway tests: started on a free loopback
// port with a generated configuration, stopped by its pid. Persistence is on
// and max_queued_messages raised: the exactly-once promise needs both; Nagle
// is off, as docs/gateway.md ("Broker settings") advises for a gateway.
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createConnection } from "node:net"
import { tmpdir, userInfo } from "node:os"
import { join } from "node:path"
import { freePort, within } from "./util.js"

export function mosquittoBinary(): string {
    for (const p of ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"]) {
        if (spawnSync(p, ["-h"]).error === undefined) return p
    }
    throw new Error("mosquitto is not installed: apt-get install -y mosquitto (.ci/run installs it)")
}

export class Mosquitto {
    port = 0
    private dir = mkdtempSync(join(tmpdir(), "devs-iot-mosquitto-"))
    private child: ChildProcess | undefined
    log = ""

    // `users`: user name -> password; given, only they may connect.
    constructor(private users?: Record<string, string>) {}

    get pid(): number {
        return this.child?.pid ?? -1
    }

    get url(): string {
        return `mqtt://127.0.0.1:${this.port}`
    }

    async start(): Promise<void> {
        if (this.port === 0) this.port = await freePort()
        const conf = join(this.dir, "mosquitto.conf")
        if (this.users) this.writePasswords(this.users)
        writeFileSync(conf, [
            `listener ${this.port} 127.0.0.1`,
            ...(this.users ? ["allow_anonymous false", `password_file ${join(this.dir, "passwords")}`] : ["allow_anonymous true"]),
            // Run as root, Mosquitto switches to the user "mosquitto", who cannot write the persistence folder.
            `user ${userInfo().username}`,
            "persistence true",
            `persistence_location ${this.dir}/`,
            "autosave_interval 1",
            "max_queued_messages 1000000",
            "max_inflight_messages 0",
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "",
        ].join("\n"))
        const child = spawn(mosquittoBinary(), ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] })
        this.child = child
        child.stderr!.on("data", (b: Buffer) => (this.log += b.toString()))
        child.stdout!.on("data", (b: Buffer) => (this.log += b.toString()))
        await within(waitListening(this.port, () => child.exitCode !== null), 10000, `mosquitto listening on ${this.port}:\n${this.log}`)
    }

    // New passwords, read again by the running broker (SIGHUP).
    setUsers(users: Record<string, string>): void {
        this.users = users
        this.writePasswords(users)
        if (this.child?.pid) process.kill(this.child.pid, "SIGHUP")
    }

    private writePasswords(users: Record<string, string>): void {
        const file = join(this.dir, "passwords")
        writeFileSync(file, "")
        for (const [user, password] of Object.entries(users)) {
            const r = spawnSync("mosquitto_passwd", ["-b", file, user, password])
            if (r.status !== 0) throw new Error(`mosquitto_passwd: ${r.stderr}`)
        }
    }

    // SIGTERM: Mosquitto saves its sessions (persistence) and exits.
    async stop(): Promise<void> {
        const c = this.child
        this.child = undefined
        if (!c || c.exitCode !== null || !c.pid) return
        const gone = new Promise<void>((r) => c.once("exit", () => r()))
        process.kill(c.pid, "SIGTERM")
        await within(gone, 10000, "mosquitto exiting").catch(() => {
            if (c.exitCode === null && c.pid) process.kill(c.pid, "SIGKILL")
        })
    }

    async restart(): Promise<void> {
        await this.stop()
        await this.start()
    }

    // A restart that loses every session and retained message (its
    // persistence file deleted while it is down).
    async restartEmpty(): Promise<void> {
        await this.stop()
        rmSync(join(this.dir, "mosquitto.db"), { force: true })
        await this.start()
    }

    async close(): Promise<void> {
        await this.stop()
        rmSync(this.dir, { recursive: true, force: true })
    }
}

async function waitListening(port: number, dead: () => boolean): Promise<void> {
    while (true) {
        if (dead()) throw new Error("mosquitto exited")
        const ok = await new Promise<boolean>((resolve) => {
            const s = createConnection({ host: "127.0.0.1", port }, () => {
                s.destroy()
                resolve(true)
            })
            s.on("error", () => resolve(false))
        })
        if (ok) return
        await new Promise((r) => setTimeout(r, 20))
    }
}
