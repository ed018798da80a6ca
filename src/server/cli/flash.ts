// `devs-iot flash`: puts a board into service over USB with the DeviceScript
// tools the package is pinned to. Three steps, each a `devs` command:
//   1. bundle: the chosen app's firmware, the settings from .env.defaults and
//      .env.local, and the DeviceScript runtime for the board, in one image
//      (devs downloads the runtime image from GitHub: this needs internet);
//   2. flash: that image, over the board's USB serial port;
//   3. devtools --serial --logging: the board's log, until Ctrl-C.
// The plan is pure (flashPlan) so `--dry-run` can print it and tests can
// check it; runFlash prepares a project folder and runs the steps.
import { spawn } from "node:child_process"
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { checkEnvFiles, envFiles, parseEnvFiles, SETTINGS_FILES } from "../envfiles.js"
import { devsCli, devsVersion, PACKAGE_ROOT } from "../package.js"

// The firmware entries, one per app (the same images `npm run build` makes).
export const FLASH_APPS: Record<string, string> = {
    demo: "src/main.ts",
    remote: "src/main-remote.ts",
    qos: "src/main-qos.ts",
    "qos-fast": "src/main-qos-fast.ts",
}
export const DEFAULT_BOARD = "devs_iot_esp32_devkit_c"

export class FlashError extends Error {}

export interface FlashOptions {
    app: string
    board: string
    serial?: string // the USB serial port (e.g. /dev/ttyUSB0); devs finds it when not given
    settingsDir: string // where .env.defaults and .env.local are read
    monitor: boolean // tail the board's log after flashing
    workDir: string // the project folder the image is built in
}

interface FlashStep {
    what: string
    args: string[] // arguments to the devs CLI
}

// The board's architecture, from this package's board file; undefined for
// a board DeviceScript knows itself.
function boardArch(board: string): string | undefined {
    const p = join(PACKAGE_ROOT, "boards", `${board}.board.json`)
    if (!existsSync(p)) return undefined
    const arch = (JSON.parse(readFileSync(p, "utf8")) as { archId?: string }).archId ?? ""
    return arch.startsWith("esp32") ? "esp32" : arch.startsWith("rp2040") ? "rp2040" : undefined
}

// A setting's value as the board gets it (undefined: not set, or no value).
function arrives(json: string | null | undefined): unknown {
    return json === undefined || json === null ? undefined : JSON.parse(json)
}

// Checks the options and the settings a board cannot run without; the steps.
export function flashPlan(o: FlashOptions): FlashStep[] {
    const entry = FLASH_APPS[o.app]
    if (entry === undefined) throw new FlashError(`--app must be one of ${Object.keys(FLASH_APPS).join(", ")}, got ${JSON.stringify(o.app)}`)
    if (!/^[a-z0-9_]+$/.test(o.board)) throw new FlashError(`--board must be a DeviceScript board id (letters, digits, _), got ${JSON.stringify(o.board)}`)
    const files = envFiles(o.settingsDir)
    if (files.length === 0) throw new FlashError(`no settings in ${o.settingsDir}: write IOT_HOST, WIFI_SSID and WIFI_PWD into .env.local there (see the README, "A first board")`)
    // Every line as DeviceScript's parser will read it (the build's check, envfiles.ts).
    const problems = checkEnvFiles(o.settingsDir)
    if (problems.length > 0) throw new FlashError(`settings in ${o.settingsDir} that would not reach the board as written:\n${problems.map((p) => "  " + p).join("\n")}`)
    const values = parseEnvFiles(o.settingsDir)
    const host = arrives(values["IOT_HOST"])
    if (host === undefined || host === "") throw new FlashError(`IOT_HOST is not set in ${files.join(" or ")}: the board would not know its server`)
    if (typeof host !== "string") throw new FlashError(`IOT_HOST in ${files.join(" or ")} arrives as ${typeof host}, not text: write it as a JSON string, IOT_HOST=${JSON.stringify(JSON.stringify(host))}`)
    const key = arrives(values["IOT_KEY"])
    if (key !== undefined && (typeof key !== "string" || !/^[0-9a-f]{64}$/.test(key))) throw new FlashError(`IOT_KEY in ${files.join(" or ")} must be 64 lowercase hex digits (devs-iot keygen)`)
    const arch = boardArch(o.board)
    if (o.serial !== undefined && arch === undefined) throw new FlashError(`--serial needs a board with a board file in boards/ (its architecture), not ${o.board}`)
    const image = join(o.workDir, `devs-iot-${o.app}-${o.board}.bin`)
    const steps: FlashStep[] = [
        { what: `build the ${o.app} app with the settings of ${files.join(" and ")} and the DeviceScript ${devsVersion()} runtime for ${o.board} into one image (downloads the runtime)`, args: ["bundle", entry, "--board", o.board, "--flash-file", image] },
        { what: "flash the image over USB", args: ["flash", ...(arch ? [arch] : []), "--board", o.board, "--file", image, ...(o.serial !== undefined ? ["--port", o.serial] : [])] },
    ]
    if (o.monitor) steps.push({ what: "tail the board's log over USB (Ctrl-C stops)", args: ["devtools", "--serial", "--logging"] })
    return steps
}

// The installed DeviceScript tools must be the pinned version: the runtime
// they flash must run the bytecode they compile.
function checkDevsVersion(): string {
    const cli = devsCli()
    const pkg = join(cli, "../../package.json")
    const found = (JSON.parse(readFileSync(pkg, "utf8")) as { version: string }).version
    if (found !== devsVersion()) throw new FlashError(`devs-iot is pinned to @devicescript/cli ${devsVersion()}, found ${found}: npm install --save-dev @devicescript/cli@${devsVersion()}`)
    return cli
}

// A project folder for devs: the firmware sources of this package, its
// boards, and the user's settings files.
function prepareWorkDir(o: FlashOptions): void {
    mkdirSync(join(o.workDir, "src"), { recursive: true })
    writeFileSync(join(o.workDir, "devsconfig.json"), "{}\n")
    writeFileSync(join(o.workDir, "package.json"), JSON.stringify({ name: `devs-iot-flash-${o.app}`, version: "0.0.0", private: true }) + "\n")
    for (const d of ["src/device", "src/shared", "src/apps", "boards"]) symlinkSync(join(PACKAGE_ROOT, d), join(o.workDir, d))
    copyFileSync(join(PACKAGE_ROOT, FLASH_APPS[o.app]!), join(o.workDir, FLASH_APPS[o.app]!))
    for (const f of SETTINGS_FILES) if (existsSync(join(o.settingsDir, f))) copyFileSync(join(o.settingsDir, f), join(o.workDir, f))
}

export function newWorkDir(): string {
    return mkdtempSync(join(tmpdir(), "devs-iot-flash-"))
}

// Runs the steps one after another; resolves with the exit code of the first
// that fails, or 0. `signal` stops the running step (Ctrl-C ends the log tail).
export async function runFlash(o: FlashOptions, steps: FlashStep[], say: (s: string) => void, signal: AbortSignal): Promise<number> {
    const cli = checkDevsVersion()
    prepareWorkDir(o)
    try {
        for (const step of steps) {
            say(`devs-iot flash: ${step.what}`)
            const code = await new Promise<number>((resolve) => {
                const child = spawn(process.execPath, [cli, ...step.args], { cwd: o.workDir, env: { ...process.env, NO_UPDATE_NOTIFIER: "1" }, stdio: "inherit", signal })
                child.on("error", () => resolve(signal.aborted ? 0 : 1))
                child.on("exit", (c) => resolve(c ?? (signal.aborted ? 0 : 1)))
            })
            if (signal.aborted) return 0
            if (code !== 0) {
                say(`devs-iot flash: failed (devs ${step.args[0]} exited with ${code})`)
                return code
            }
        }
        return 0
    } finally {
        rmSync(o.workDir, { recursive: true, force: true })
    }
}
