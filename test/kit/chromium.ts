// Headless Chromium for browser tests: the system's Chromium (Debian's
// package), started on loopback with a throw-away profile, driven over CDP by
// playwright-core (which downloads nothing), stopped by pid.
import { spawn, type ChildProcess } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { chromium, type Browser } from "playwright-core"
import { within } from "./util.js"

// The real binary before Debian's wrapper script; CHROMIUM_PATH overrides.
const CANDIDATES = ["/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]

export function findChromium(): string | undefined {
    const env = process.env["CHROMIUM_PATH"]
    if (env) return existsSync(env) ? env : undefined
    return CANDIDATES.find((p) => existsSync(p))
}

export interface Headless {
    browser: Browser
    process: ChildProcess
    stop(): Promise<void>
}

export async function startChromium(bin: string): Promise<Headless> {
    const profile = mkdtempSync(join(tmpdir(), "devs-iot-chromium-"))
    const child = spawn(
        bin,
        [
            "--headless=new",
            "--no-sandbox", // CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            `--user-data-dir=${profile}`,
            "about:blank",
        ],
        // Its own process group: Chromium's helper processes (renderer,
        // utility) are stopped with it, not left writing into the profile.
        { stdio: ["ignore", "ignore", "pipe"], detached: true }
    )
    let stderr = ""
    const stopProcess = async () => {
        if (child.exitCode === null && child.signalCode === null && child.pid) {
            const exited = new Promise((r) => child.once("exit", r))
            try {
                process.kill(-child.pid, "SIGKILL") // the group
            } catch {
                process.kill(child.pid, "SIGKILL")
            }
            await within(exited, 5000, "Chromium exits").catch(() => {})
        }
        // A helper that has not yet died may still write a file: retried.
        rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 })
    }
    try {
        const ws = await within(
            new Promise<string>((resolve, reject) => {
                child.stderr!.on("data", (b: Buffer) => {
                    stderr += b.toString()
                    const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr)
                    if (m) resolve(m[1]!)
                })
                child.once("exit", (code) => reject(new Error(`Chromium exited (${code}) before listening:\n${stderr}`)))
                child.once("error", reject)
            }),
            30000,
            "Chromium's DevTools address"
        )
        const browser = await within(chromium.connectOverCDP(ws), 30000, "connect to Chromium")
        return {
            browser,
            process: child,
            stop: async () => {
                await within(browser.close(), 5000, "browser.close").catch(() => {})
                await stopProcess()
            },
        }
    } catch (e) {
        await stopProcess()
        throw e
    }
}
