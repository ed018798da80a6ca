// Runs DeviceScript bytecode in the simulator VM as a child process, bounded
// in time and stopped by its pid.
import { spawn } from "node:child_process"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { join, dirname } from "node:path"

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..")
export const DEVS_CLI = createRequire(import.meta.url).resolve("@devicescript/cli/built/devicescript-cli.cjs")

export interface VmResult {
    code: number | null
    output: string
    timedOut: boolean
}

// `devs run <image> --test --test-self-exit`: exit 0 on ds.restart(), 1 on an
// unhandled exception or after testTimeout.
export function runTestImage(image: string, timeoutMs: number): Promise<VmResult> {
    return new Promise((resolve) => {
        const child = spawn(
            process.execPath,
            [DEVS_CLI, "run", join(ROOT, image), "--test", "--test-self-exit", "-T", String(timeoutMs)],
            { cwd: ROOT, env: { ...process.env, NO_UPDATE_NOTIFIER: "1" }, stdio: ["ignore", "pipe", "pipe"] }
        )
        let output = ""
        child.stdout.on("data", (b: Buffer) => (output += b.toString("utf8")))
        child.stderr.on("data", (b: Buffer) => (output += b.toString("utf8")))
        let timedOut = false
        const killer = setTimeout(() => {
            timedOut = true
            child.kill("SIGKILL")
        }, timeoutMs + 30000)
        child.on("close", (code) => {
            clearTimeout(killer)
            resolve({ code, output, timedOut })
        })
    })
}

// Strips the simulator's colour codes and "WASM> " prefixes.
export function plain(output: string): string[] {
    return output
        .replace(/\x1b\[[0-9;]*m/g, "")
        .split("\n")
        .map((l) => l.replace(/^WASM> /, ""))
}
