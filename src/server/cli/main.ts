// The devs-iot command line: `devs-iot server ...` and `devs-iot client ...`.
// Every flag can also come from the environment (DEVS_IOT_<FLAG>); a flag
// wins over the environment. A bad flag or value exits 2 with a message that
// names it.
import { createInterface } from "node:readline"
import { parseArgs } from "node:util"
import { checkClientId } from "../../shared/index.js"
import { closest } from "../options.js"
import { SERVER_BOUNDS } from "../../shared/bounds.js"
import { TIMEOUT } from "../../shared/config.js"
import { clientKey, FLAGS, FlagError, hexKey, readInt, readKeyFile, type IntOpt, type Opt } from "./flags.js"
import { Client } from "../client.js"
import { makeLogger, LEVELS, type Level, type Logger } from "../log.js"
import { Server } from "../server.js"
import { openState, StateError, type StateStore } from "../state.js"
import { brokerAddress, Gateway } from "../gateway.js"
import { boardTopic } from "../topics.js"
import { checkHostNames, checkToken, HttpStatus } from "../http.js"
import { readFileSync } from "node:fs"
import { KeyFileError, loadKeyFile, modeWarning, type KeyFile } from "../keys.js"
import { randomBytes } from "node:crypto"
import { APPS, appExpects, startApp, type AppName } from "../../apps/server.js"
import { buildSimImage, hintIfNoServer, runSim, SIM_APPS, TEST_APPS, type SimApp } from "./sim.js"
import { packageVersion, SetupError } from "../package.js"
import { DEFAULT_BOARD, FLASH_APPS, FlashError, flashPlan, newWorkDir, runFlash, type FlashOptions } from "./flash.js"
import { copyFileSync, rmSync } from "node:fs"
import { constants as osConstants, tmpdir } from "node:os"
import { join, resolve as resolvePath } from "node:path"
import { DEPLOY_COMMAND, OTA_SERVER_OPTIONS, OTA_SIM_OPTIONS, runDeploy, runSimWithOta, startOta } from "./ota.js"

class UsageError extends FlagError {}

const COMMON: Record<string, Opt> = {
    timeout: { type: "string", arg: "MS", help: `${TIMEOUT.doc} (default ${TIMEOUT.dflt})` },
    "log-level": { type: "string", arg: "LEVEL", help: `${LEVELS.join("|")} (default info)` },
    json: { type: "boolean", help: "logs as JSON lines instead of readable text" },
    help: { type: "boolean", help: "show this help" },
}

// Delivery state across restarts, the same for the server and the Node client.
const STATE: Record<string, Opt> = {
    state: { type: "string", arg: "DIR", help: "keep the delivery state (ids delivered, lines owed, counters) in this folder, so a restart reads no line twice and loses none (safe against a process crash); default in memory" },
    "state-sync": { type: "boolean", option: "state", help: "with --state: fsync before each ACK leaves, batched over the lines that arrive together (safe against power loss too)" },
}

// Who may connect and what each may make the server hold: the same for a
// server and a gateway.
const BOARD_SIDE: Record<string, Opt> = {
    expect: { type: "string", arg: "ID,ID", option: "expected", help: "client ids the server expects (others get a warning)" },
    "strict-ids": { type: "boolean", help: "refuse ids not in --expect" },
    ...Object.fromEntries(SERVER_BOUNDS.map((b) => [b.flag, { type: "string", arg: b.arg, option: b.name, help: `${b.doc} (default ${b.dfltText ?? b.dflt})` } as Opt])),
    keys: { type: "string", arg: "FILE", help: "per-client keys, one '<id> <key> [<next key>] [encrypt]' or '<id> revoked' a line; keyed ids must authenticate (SIGHUP reloads)" },
    "allow-plain": { type: "string", arg: "ID,ID", help: "keyed ids that may still connect without authenticating" },
    encrypt: { type: "boolean", help: "encrypt the messages sent on authenticated links (AES-256-CCM)" },
    "push-keys": { type: "boolean", help: "push an id's next key (second in --keys) to a board that authenticated with its first; the board confirms, the log says 'key pushed'" },
}

export const COMMANDS: Record<string, { summary: string; options: Record<string, Opt> }> = {
    server: {
        summary: "run a devs-iot server",
        options: {
            port: FLAGS.listenPort,
            host: { type: "string", arg: "ADDR", help: "address to listen on (default 0.0.0.0)" },
            app: { type: "string", arg: "NAME", help: `application: ${APPS.join("|")} (default none)` },
            interval: FLAGS.appInterval,
            ...BOARD_SIDE,
            "shutdown-timeout": FLAGS.shutdownTimeout,
            "http-port": FLAGS.httpPort,
            "http-host": { type: "string", arg: "ADDR", help: "address the HTTP side listens on (default 127.0.0.1)" },
            "http-allowed-hosts": { type: "string", arg: "NAMES", help: "host names the HTTP side answers to besides loopback names and IP addresses, comma-separated (any other name may be a DNS rebinding)" },
            "http-token": { type: "string", arg: "TOKEN", help: "enables the HTTP actions (disconnect a board, send it a line) for this bearer token, 16+ characters; prefer the environment or --http-token-file" },
            "http-token-file": { type: "string", arg: "FILE", help: "read the HTTP token from this file" },
            ...STATE,
            ...OTA_SERVER_OPTIONS,
            gateway: { type: "boolean", help: "run as an MQTT gateway instead: the same as 'devs-iot gateway' with the other flags given (see its --help)" },
            ...COMMON,
        },
    },
    gateway: {
        summary: "run an MQTT gateway: boards' lines on devs-iot/<id>/up, lines to them from devs-iot/<id>/down (docs/gateway.md)",
        options: {
            mqtt: { type: "string", arg: "URL", help: "the broker (mqtt://[user:password@]host:port, %-escapes decoded; a password: prefer the environment); default: an embedded broker (Aedes) on --broker-port" },
            "broker-port": FLAGS.brokerPort,
            "broker-host": { type: "string", arg: "ADDR", help: "the embedded broker's address (default 127.0.0.1)" },
            name: { type: "string", arg: "NAME", help: "this gateway's name in devs-iot/$gateway/<name>/status (default <hostname>-<pid>)" },
            port: FLAGS.listenPort,
            host: { type: "string", arg: "ADDR", help: "address to listen on for boards (default 0.0.0.0)" },
            ...BOARD_SIDE,
            "shutdown-timeout": FLAGS.shutdownTimeout,
            ...COMMON,
        },
    },
    deploy: { summary: DEPLOY_COMMAND.summary, options: { ...DEPLOY_COMMAND.options, "log-level": COMMON["log-level"]!, json: COMMON["json"]!, help: COMMON["help"]! } },
    client: {
        summary: "connect as a client: stdin lines are sent, received lines go to stdout",
        options: {
            id: { type: "string", arg: "ID", help: "this client's id (required)" },
            host: FLAGS.serverHost,
            port: FLAGS.serverPort,
            "no-qos": { type: "boolean", help: "send without ACK/retransmit (may be lost in an outage)" },
            "no-wait": { type: "boolean", help: "qos writes do not wait for earlier ones (order not kept)" },
            key: FLAGS.clientKey,
            "key-file": FLAGS.clientKeyFile,
            encrypt: { type: "boolean", help: "encrypt the messages this client sends (needs a key)" },
            ...STATE,
            ...COMMON,
        },
    },
    flash: {
        summary: "put a board into service over USB: an app's firmware, the settings in .env.defaults/.env.local and the pinned DeviceScript runtime in one image; then tail the board's log",
        options: {
            app: { type: "string", arg: "NAME", help: `firmware app: ${Object.keys(FLASH_APPS).join("|")} (default demo)` },
            board: { type: "string", arg: "ID", help: `DeviceScript board id (default ${DEFAULT_BOARD}, this package's ESP32 DevKitC)` },
            serial: { type: "string", arg: "PATH", help: "the board's USB serial port, e.g. /dev/ttyUSB0 (default: found by devs)" },
            settings: { type: "string", arg: "DIR", help: "the folder with .env.defaults and .env.local (default: the current folder)" },
            "no-monitor": { type: "boolean", help: "do not tail the board's log after flashing" },
            "dry-run": { type: "boolean", help: "print the devs commands and the folder they would run in; change nothing" },
            help: COMMON["help"]!,
        },
    },
    keygen: {
        summary: "print a new random key (64 hex digits) for a --keys file, a client's --key or a board's IOT_KEY",
        options: { help: COMMON["help"]! },
    },
    sim: {
        summary: "build the board firmware and run it in the DeviceScript simulator as a board with this id",
        options: {
            id: { type: "string", arg: "ID", help: "the simulated board's id (required)" },
            host: FLAGS.serverHost,
            port: FLAGS.serverPort,
            app: { type: "string", arg: "NAME", help: `firmware app: ${SIM_APPS.filter((a) => !TEST_APPS.includes(a)).join("|")} (default demo); in a clone of the repository also ${TEST_APPS.join("|")}` },
            interval: FLAGS.boardInterval,
            role: { type: "string", arg: "ROLE", help: "remote app: button, led, or both (default both)" },
            watchdog: FLAGS.boardWatchdog,
            verbose: { type: "boolean", help: "log each step of the link (WiFi, connect, outage, resend)" },
            key: { type: "string", arg: "HEX", help: "the board's key (IOT_KEY, 64 hex digits); prefer the environment (a flag is visible to every user)" },
            encrypt: { type: "boolean", help: "the board encrypts the messages it sends (IOT_ENCRYPT; needs --key)" },
            ...OTA_SIM_OPTIONS,
            timeout: COMMON["timeout"]!,
            help: COMMON["help"]!,
        },
    },
}

const USAGE = `Usage: devs-iot <command> [options]

Commands:
${Object.entries(COMMANDS)
    .map(([n, c]) => `  ${n.padEnd(8)} ${c.summary}`)
    .join("\n")}

Run 'devs-iot <command> --help' for its options, 'devs-iot --version' for the version. Every option can also be set
in the environment as DEVS_IOT_<OPTION> (e.g. DEVS_IOT_PORT=9000).`

// A mosquitto_sub command line that watches every board through the broker
// at `url` (no user name or password in it). TLS (mqtts) is on port 8883
// unless the URL says; mosquitto_sub takes no WebSocket URL.
export function watchCommand(url: string): string {
    const u = new URL(url)
    if (u.protocol === "ws:" || u.protocol === "wss:") return `an MQTT client that speaks WebSocket, at ${url}, topic 'devs-iot/#'`
    const tls = u.protocol === "mqtts:"
    return `mosquitto_sub -h ${u.hostname} -p ${u.port || (tls ? 8883 : 1883)}${tls ? " --capath /etc/ssl/certs" : ""} -t 'devs-iot/#' -v`
}

export function envName(flag: string): string {
    return "DEVS_IOT_" + flag.toUpperCase().replace(/-/g, "_")
}

// DEVS_IOT_ variables that are no command's option: read by the tools the
// CLI starts (tools/jacdac-port.cjs, tools/devs-settings-hook.cjs) and by
// the benchmarks (DEVS_IOT_BENCH_*).
const TOOL_VARIABLES = ["DEVS_IOT_JACDAC_PORT", "DEVS_IOT_READ_CHUNK", "DEVS_IOT_SETTINGS_OUT"]

// A DEVS_IOT_ variable no command reads is a slip (DEVS_IOT_PROT=9000 in an
// env file would leave the port at its default): an error, as an unknown flag.
function checkEnvNames(env: NodeJS.ProcessEnv): void {
    const known = [...new Set(Object.values(COMMANDS).flatMap((c) => Object.keys(c.options).filter((k) => k !== "help").map(envName)))]
    for (const name of Object.keys(env)) {
        if (!name.startsWith("DEVS_IOT_") || name.startsWith("DEVS_IOT_BENCH_") || known.includes(name) || TOOL_VARIABLES.includes(name)) continue
        const near = closest(name, known)
        throw new UsageError(`${name} is not a devs-iot setting${near === undefined ? "" : ` (did you mean ${near}?)`}; unset it`)
    }
}

function help(cmd: string): string {
    const c = COMMANDS[cmd]!
    const rows = Object.entries(c.options).map(([name, o]) => {
        const left = `  --${name}${o.arg ? " " + o.arg : ""}`
        // Descriptions start in one column; a flag too long for it gets its own line.
        const lead = left.length < 26 ? `${left.padEnd(26)} ` : `${left}\n${"".padEnd(27)}`
        return name === "help" ? `${lead}${o.help}` : `${lead}${o.help}\n${"".padEnd(27)}env ${envName(name)}`
    })
    return `Usage: devs-iot ${cmd} [options]${cmd === "deploy" ? " image.devs" : ""}\n\n${c.summary}.\n\nOptions:\n${rows.join("\n")}`
}

type Values = Record<string, string | boolean | undefined>

// Flags, then the environment for anything not given as a flag.
// A boolean setting's value in the environment.
function envBoolean(name: string, raw: string): boolean {
    const v = raw.trim().toLowerCase()
    if (["1", "true", "yes", "on"].includes(v)) return true
    if (["0", "false", "no", "off", ""].includes(v)) return false
    throw new UsageError(`${envName(name)} must be true or false (1/0, yes/no), got ${JSON.stringify(raw)}`)
}

function readOptions(cmd: string, args: string[], env: NodeJS.ProcessEnv): { values: Values; source: Record<string, string>; positionals: string[] } {
    const spec = COMMANDS[cmd]!.options
    let parsed: Values
    let positionals: string[]
    try {
        const r = parseArgs({ args, options: Object.fromEntries(Object.entries(spec).map(([k, o]) => [k, { type: o.type }])), strict: true, allowPositionals: cmd === "deploy" })
        parsed = r.values as Values
        positionals = r.positionals
    } catch (e) {
        const message = (e as Error).message.replace(/\. To specify a positional.*$/s, "")
        const flag = /^Unknown option '--([^']+)'$/.exec(message)?.[1]
        const near = flag === undefined ? undefined : closest(flag, Object.keys(spec))
        throw new UsageError(near === undefined ? message : `${message} (did you mean --${near}?)`)
    }
    const values: Values = {}
    const source: Record<string, string> = {}
    for (const [name, o] of Object.entries(spec)) {
        if (parsed[name] !== undefined) {
            values[name] = parsed[name]
            source[name] = `--${name}`
            continue
        }
        const raw = env[envName(name)]
        if (raw === undefined || name === "help") continue
        source[name] = envName(name)
        values[name] = o.type === "boolean" ? envBoolean(name, raw) : raw
    }
    return { values, source, positionals }
}

// A whole-number flag, checked against its range (its default when absent).
function int(values: Values, source: Record<string, string>, name: string, r: IntOpt["range"]): number {
    return readInt(values[name], source[name] ?? `--${name}`, r)
}

// A whole number when given, else undefined (the library's default applies).
function optInt(values: Values, source: Record<string, string>, name: string, r: IntOpt["range"]): number | undefined {
    return readInt(values[name], source[name] ?? `--${name}`, r, true)
}

function str(values: Values, name: string): string | undefined {
    const v = values[name]
    return typeof v === "string" ? v : undefined
}

function level(values: Values, source: Record<string, string>): Level {
    const v = str(values, "log-level") ?? "info"
    if (!(LEVELS as readonly string[]).includes(v)) throw new UsageError(`${source["log-level"]} must be one of ${LEVELS.join(", ")}, got ${JSON.stringify(v)}`)
    return v as Level
}

function id(name: string, value: string): string {
    const p = checkClientId(value)
    if (p !== "") throw new UsageError(`${name}: ${p}`)
    return value
}

function host(values: Values, source: Record<string, string>, dflt: string): string {
    const h = str(values, "host") ?? dflt
    if (h.trim() === "") throw new UsageError(`${source["host"]} must not be empty`)
    return h
}

// Runs until SIGINT/SIGTERM; resolves with the exit code.
// The board-side flags (BOARD_SIDE) as Server options. `expects`: the ids
// without --expect.
function boardSide(values: Values, source: Record<string, string>, expects: string[]) {
    const expected = str(values, "expect") !== undefined
        ? str(values, "expect")!.split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => id(source["expect"]!, s))
        : expects
    const strictIds = values["strict-ids"] === true
    if (strictIds && expected.length === 0) throw new UsageError(`${source["strict-ids"]} needs a list of ids (--expect a,b)`)
    const keyFile = str(values, "keys")
    let keys: KeyFile = { keys: new Map(), revoked: [], open: [] }
    if (keyFile !== undefined) {
        try {
            keys = loadKeyFile(keyFile)
        } catch (e) {
            if (e instanceof KeyFileError) throw new UsageError(e.message)
            throw e
        }
    }
    const allowPlain = (str(values, "allow-plain") ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => id(source["allow-plain"]!, s))
    // Each of these acts on keyed ids only: without --keys there are none.
    if (keyFile === undefined)
        for (const flag of ["allow-plain", "encrypt", "push-keys"])
            if (source[flag] !== undefined && values[flag] !== false) throw new UsageError(`${source[flag]} acts on keyed ids only: give --keys FILE too`)
    const limits = Object.fromEntries(SERVER_BOUNDS.map((b) => [b.name, optInt(values, source, b.flag, b)]))
    return {
        expected,
        allowPlain,
        keyFile,
        keys,
        options: { expected, strictIds, limits, keys: keys.keys, revoked: keys.revoked, allowPlain, encrypt: values["encrypt"] === true, pushKeys: values["push-keys"] === true },
    }
}

// Logs the keys loaded; SIGHUP reloads the key file, and a bad file keeps
// the keys in use. Live connections the new file no longer admits are
// ended (Server.setKeys).
function watchKeys(server: Server, keyFile: string | undefined, keys: KeyFile, log: Logger): void {
    if (keyFile !== undefined) {
        log.info({ file: keyFile, ids: keys.keys.size, revoked: keys.revoked.length }, "keys loaded")
        const w = modeWarning(keyFile, "key file")
        if (w !== "") log.warn({ file: keyFile }, w)
    }
    const onHup = () => {
        if (keyFile === undefined) return void log.warn("SIGHUP: no --keys file to reload")
        try {
            const next = loadKeyFile(keyFile)
            const r = server.setKeys(next.keys, next.revoked, next.open)
            log.info({ file: keyFile, ids: next.keys.size, revoked: next.revoked.length, ended: r.ended.length }, "keys reloaded")
            for (const rid of r.removed)
                log.warn({ client: rid }, `id ${JSON.stringify(rid)} was removed from the key file: refused until the server restarts; add the line '${rid} revoked' to keep it refused after a restart, or '${rid} open' to let it connect without a key`)
            const w = modeWarning(keyFile, "key file")
            if (w !== "") log.warn({ file: keyFile }, w)
        } catch (e) {
            log.error({ file: keyFile }, `keys not reloaded, the old ones stay in use: ${(e as Error).message}`)
        }
    }
    process.on("SIGHUP", onHup)
}

async function runServer(values: Values, source: Record<string, string>): Promise<number> {
    const app = (str(values, "app") ?? "none") as AppName
    if (!APPS.includes(app)) throw new UsageError(`${source["app"]} must be one of ${APPS.join(", ")}, got ${JSON.stringify(app)}`)
    const opts = {
        port: int(values, source, "port", FLAGS.listenPort.range),
        host: host(values, source, "0.0.0.0"),
        timeout: int(values, source, "timeout", TIMEOUT),
    }
    const interval = int(values, source, "interval", FLAGS.appInterval.range)
    const shutdownMs = int(values, source, "shutdown-timeout", FLAGS.shutdownTimeout.range)
    const log = makeLogger(level(values, source), values["json"] === true)
    // From here a signal is answered, also while the start waits (a state
    // folder another process holds): catchSignals.
    const signals = catchSignals(log)
    const started = (async () => {
        const side = boardSide(values, source, appExpects(app))
        const { expected, allowPlain } = side
        const state = await stateFrom(values, source, log, "server")
        if (state === null) return 1
        const server = new Server({ ...opts, ...side.options, logger: log, state })
        const http = httpStatus(values, source, server, log)
        watchKeys(server, side.keyFile, side.keys, log)
        const stopOta = await startOta(server, values, log, server.keyedIds(), allowPlain, http?.fleet)
        try {
            await server.listen()
        } catch (e) {
            const err = e as NodeJS.ErrnoException
            log.fatal({ code: err.code }, `cannot listen on ${opts.host}:${opts.port}: ${err.code === "EADDRINUSE" ? "address already in use" : err.message}`)
            return 1
        }
        if (http) {
            try {
                await http.listen()
            } catch (e) {
                const err = e as NodeJS.ErrnoException
                log.fatal({ code: err.code }, `cannot listen for HTTP on ${http.host}:${str(values, "http-port")}: ${err.code === "EADDRINUSE" ? "address already in use" : err.message}`)
                await server.close()
                return 1
            }
        }
        const running = startApp(app, server, log, interval)
        log.info({ app, expected }, "ready")
        // SIGTERM: stop accepting, ACK what the application has read, close every
        // link (FIN), and exit within shutdownMs whatever the peers do.
        return await signals.stopWith(async () => {
            const up = server.connections().filter((c) => c.status()).length
            log.info({ links: up }, `no longer accepting; closing ${up} link${up === 1 ? "" : "s"}`)
            running.stop()
            await http?.close()
            await stopOta?.()
            await server.close()
            state?.close()
        }, shutdownMs)
    })()
    return await Promise.race([signals.code, started])
}

// The store --state names (undefined: in memory, the link's own), or null
// after logging why it cannot be opened: never a silent empty start.
async function stateFrom(values: Values, source: Record<string, string>, log: Logger, side: "server" | "client"): Promise<StateStore | undefined | null> {
    const dir = str(values, "state")
    const sync = values["state-sync"] === true
    if (dir === undefined) {
        if (sync) throw new UsageError(`${source["state-sync"]} needs --state DIR`)
        return undefined
    }
    try {
        const s = await openState(dir, { sync, logger: log, side })
        log.info({ state: dir, sync }, `delivery state in ${dir} (${sync ? "fsync before each ACK: safe against power loss" : "safe against a process crash"})`)
        return s
    } catch (e) {
        if (!(e instanceof StateError)) throw e
        log.fatal({ code: e.code }, e.message)
        return null
    }
}

// Runs an MQTT gateway until SIGINT/SIGTERM.
async function runGateway(values: Values, source: Record<string, string>): Promise<number> {
    const log = makeLogger(level(values, source), values["json"] === true)
    const port = int(values, source, "port", FLAGS.listenPort.range)
    const side = boardSide(values, source, [])
    const gw = new Gateway({
        port,
        host: host(values, source, "0.0.0.0"),
        timeout: int(values, source, "timeout", TIMEOUT),
        ...side.options,
        mqtt: str(values, "mqtt"),
        brokerPort: int(values, source, "broker-port", FLAGS.brokerPort.range),
        brokerHost: str(values, "broker-host"),
        name: str(values, "name"),
        logger: log,
    })
    if (source["mqtt"] === "--mqtt" && brokerAddress(str(values, "mqtt")!).auth.password !== undefined)
        log.warn("--mqtt with a password on the command line is visible to every user of this machine (ps): set DEVS_IOT_MQTT in the environment instead")
    watchKeys(gw.server, side.keyFile, side.keys, log)
    const shutdownMs = int(values, source, "shutdown-timeout", FLAGS.shutdownTimeout.range)
    // From here a signal is answered, also while the start waits (a broker
    // that does not answer): catchSignals.
    const signals = catchSignals(log)
    const started = (async () => {
        try {
            await gw.start()
        } catch (e) {
            const err = e as NodeJS.ErrnoException & { address?: string; port?: number }
            const where = err.address !== undefined ? ` on ${err.address}:${err.port}` : ""
            const hint = err.port !== undefined && err.port !== port ? ` (the embedded broker's port: give another with --broker-port, or use a broker already running with --mqtt mqtt://127.0.0.1:${err.port})` : ""
            log.fatal({ code: err.code }, `gateway cannot start: ${err.code === "EADDRINUSE" ? `address already in use${where}${hint}` : err.message}`)
            await gw.close().catch(() => undefined)
            return 1
        }
        log.info({ broker: gw.brokerUrl, up: boardTopic("+", "up"), down: boardTopic("<id>", "down") }, `ready: watch the boards with: ${watchCommand(gw.brokerUrl)}`)
        return await signals.stopWith(() => gw.close(), shutdownMs)
    })()
    return await Promise.race([signals.code, started])
}

// The HTTP side when --http-port is given; the token from the flag, the
// environment or a file (one of them).
function httpStatus(values: Values, source: Record<string, string>, server: Server, log: Logger): HttpStatus | undefined {
    const port = optInt(values, source, "http-port", FLAGS.httpPort.range)
    const file = str(values, "http-token-file")
    let token = str(values, "http-token")
    if (token !== undefined && file !== undefined) throw new UsageError(`give the HTTP token once: ${source["http-token"]} or ${source["http-token-file"]}`)
    if (file !== undefined) {
        try {
            token = readFileSync(file, "utf-8").trim()
        } catch (e) {
            throw new UsageError(`${source["http-token-file"]}: cannot read ${JSON.stringify(file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
        }
    }
    const what = file !== undefined ? source["http-token-file"] : source["http-token"]
    if (token !== undefined) {
        try {
            checkToken(token)
        } catch (e) {
            throw new UsageError(`${what}: ${(e as Error).message}`)
        }
    }
    if (port === undefined) {
        const given = token !== undefined ? what : values["http-host"] !== undefined ? source["http-host"] : values["http-allowed-hosts"] !== undefined ? source["http-allowed-hosts"] : undefined
        if (given !== undefined) throw new UsageError(`${given} needs --http-port`)
        return undefined
    }
    const host = str(values, "http-host") ?? "127.0.0.1"
    if (host.trim() === "") throw new UsageError(`${source["http-host"]} must not be empty`)
    const names = str(values, "http-allowed-hosts")
    let allowedHosts: string[] | undefined
    try {
        allowedHosts = names === undefined ? undefined : checkHostNames(names.split(",").map((n) => n.trim()).filter((n) => n !== ""))
    } catch (e) {
        throw new UsageError(`${source["http-allowed-hosts"]}: ${(e as Error).message}`)
    }
    return new HttpStatus(server, { port, host, token, allowedHosts, logger: log })
}

async function runClient(values: Values, source: Record<string, string>): Promise<number> {
    const cid = str(values, "id")
    if (cid === undefined) throw new UsageError("--id is required (or DEVS_IOT_ID)")
    const log = makeLogger(level(values, source), values["json"] === true)
    const { key, file: keyFile } = clientKey(values, source, log)
    // From here a signal is answered, also while the start waits (a state
    // folder another process holds): catchSignals.
    const signals = catchSignals(log)
    const started = (async () => {
        const state = await stateFrom(values, source, log, "client")
        if (state === null) return 1
        const client = new Client({
            state,
            id: id(source["id"]!, cid),
            host: host(values, source, "127.0.0.1"),
            port: int(values, source, "port", FLAGS.serverPort.range),
            timeout: int(values, source, "timeout", TIMEOUT),
            logger: log,
            ...(key !== undefined ? { key } : {}),
            encrypt: values["encrypt"] === true,
        }).start()
        // SIGHUP re-reads --key-file (a key rotation): the link reconnects with the new key.
        const onHup = () => {
            if (keyFile === undefined) return void log.warn("SIGHUP: no --key-file to re-read")
            try {
                client.setKey(readKeyFile(keyFile))
                log.info({ file: keyFile }, "key re-read: reconnecting with it")
            } catch (e) {
                log.error({ file: keyFile }, `key not re-read, the old one stays in use: ${(e as Error).message}`)
            }
        }
        process.on("SIGHUP", onHup)
        const qos = values["no-qos"] !== true
        const wait = values["no-wait"] !== true
        const reading = (async () => {
            try {
                for await (const line of client) process.stdout.write(line + "\n")
            } catch (e) {
                log.error({ err: (e as Error).message }, "read failed")
            }
        })()
        const input = createInterface({ input: process.stdin, crlfDelay: Infinity })
        let failed = 0
        const sending = (async () => {
            const pending = new Set<Promise<void>>()
            for await (const line of input) {
                if (line === "") continue // an empty line cannot be sent (it would look like an ACK)
                const p = client.write(line, { qos, wait }).catch((e: Error & { code?: string }) => {
                    failed++
                    log.error({ code: e.code }, `not sent: ${e.message}`)
                })
                if (wait && qos) await p
                else {
                    pending.add(p)
                    void p.finally(() => pending.delete(p))
                    if (pending.size >= 1024) await Promise.race(pending) // bounded, like the link's queue
                }
            }
            await Promise.all(pending)
        })()
        const stop = async () => {
            await client.close()
            await reading
            state?.close()
        }
        const byStdin = sending.then(async () => {
            await stop()
            return failed > 0 ? 1 : 0
        })
        return await Promise.race([byStdin, signals.stopWith(stop)])
    })()
    return await Promise.race([signals.code, started])
}

async function runSimCommand(values: Values, source: Record<string, string>): Promise<number> {
    const cid = str(values, "id")
    if (cid === undefined) throw new UsageError("--id is required (or DEVS_IOT_ID)")
    const app = (str(values, "app") ?? "demo") as SimApp
    if (!SIM_APPS.includes(app)) throw new UsageError(`${source["app"]} must be one of ${SIM_APPS.join(", ")}, got ${JSON.stringify(app)}`)
    const role = str(values, "role") ?? ""
    if (!["", "button", "led", "both"].includes(role)) throw new UsageError(`${source["role"]} must be button, led or both, got ${JSON.stringify(role)}`)
    const cfg = {
        app,
        id: id(source["id"]!, cid),
        host: host(values, source, "127.0.0.1"),
        port: int(values, source, "port", FLAGS.serverPort.range),
        timeout: int(values, source, "timeout", TIMEOUT),
        interval: int(values, source, "interval", FLAGS.boardInterval.range),
        watchdog: int(values, source, "watchdog", FLAGS.boardWatchdog.range),
        verbose: values["verbose"] === true,
        role: role === "both" ? "" : role,
        ...(str(values, "key") !== undefined ? { key: hexKey(str(values, "key")!, source["key"]!).toLowerCase() } : {}),
        encrypt: values["encrypt"] === true,
    }
    if (source["key"] === "--key") process.stderr.write("devs-iot sim: warning: --key on the command line is visible to every user of this machine (ps): set DEVS_IOT_KEY in the environment instead\n")
    if (str(values, "image") === undefined) process.stderr.write(`devs-iot sim: building ${app} for board ${JSON.stringify(cfg.id)} -> ${cfg.host}:${cfg.port}\n`)
    const prebuilt = str(values, "image")
    // A signal during the build (seconds of compiling) ends the compiler
    // and removes the build's temp folder before the exit.
    const signals = catchSignals(makeLogger("warn", false))
    const building = new AbortController()
    void signals.code.then(() => building.abort())
    let image
    try {
        image = prebuilt !== undefined ? { image: prebuilt, bytes: 0, remove: () => {} } : await buildSimImage(cfg, building.signal)
    } catch (e) {
        if (building.signal.aborted) return await signals.code
        throw e
    }
    if (building.signal.aborted) {
        image.remove()
        return await signals.code
    }
    const out = str(values, "out")
    if (out !== undefined) {
        copyFileSync(image.image, out)
        image.remove()
        process.stderr.write(`devs-iot sim: wrote ${out} (${image.bytes} bytes)\n`)
        return 0
    }
    if (!cfg.verbose) hintIfNoServer(cfg.host, cfg.port, (line) => process.stderr.write(line + "\n"))
    const url = str(values, "ota-url")
    const run = url !== undefined ? await runSimWithOta(image.image, cfg.id, url, (line) => process.stdout.write(line + "\n")).then(({ vm, stop }) => ({ exited: vm.exited.then(() => vm.child.exitCode), stop })) : await runSim(image.image, (line) => process.stdout.write(line + "\n"))
    // Stopped by a signal: the VM's kill is no failure.
    let stopping = false
    const code = await Promise.race([
        run.exited.then((c) => (c === 0 || stopping ? 0 : 1)),
        signals.stopWith(() => ((stopping = true), run.stop())),
    ])
    if (!stopping) await run.stop() // a signal while the VM started
    image.remove()
    return code
}

async function runFlashCommand(values: Values): Promise<number> {
    const dryRun = values["dry-run"] === true
    const o: FlashOptions = {
        app: str(values, "app") ?? "demo",
        board: str(values, "board") ?? DEFAULT_BOARD,
        ...(str(values, "serial") !== undefined ? { serial: str(values, "serial")! } : {}),
        settingsDir: resolvePath(str(values, "settings") ?? "."),
        monitor: values["no-monitor"] !== true,
        workDir: dryRun ? join(tmpdir(), "devs-iot-flash-XXXXXX") : newWorkDir(),
    }
    let steps
    try {
        steps = flashPlan(o)
    } catch (e) {
        if (!dryRun) rmSync(o.workDir, { recursive: true, force: true })
        if (e instanceof FlashError) throw new UsageError(e.message)
        throw e
    }
    if (dryRun) {
        process.stdout.write(`# in ${o.workDir}: this package's firmware sources and boards, and the settings files of ${o.settingsDir}\n`)
        for (const s of steps) process.stdout.write(`# ${s.what}\nnpx devs ${s.args.map((a) => (/^[\w./:=@-]+$/.test(a) ? a : JSON.stringify(a))).join(" ")}\n`)
        return 0
    }
    const stop = new AbortController()
    const onSignal = () => stop.abort()
    process.once("SIGINT", onSignal)
    process.once("SIGTERM", onSignal)
    try {
        return await runFlash(o, steps, (s) => process.stderr.write(s + "\n"), stop.signal)
    } catch (e) {
        if (e instanceof FlashError || /DeviceScript tools/.test((e as Error).message)) {
            process.stderr.write(`devs-iot flash: ${(e as Error).message}\n`)
            return 1
        }
        throw e
    } finally {
        process.off("SIGINT", onSignal)
        process.off("SIGTERM", onSignal)
    }
}

// SIGINT and SIGTERM from now on; `code` resolves with the exit code. Once
// `stopWith` has given the shutdown, a signal runs `stop` and resolves with
// 0, or with 1 when it took longer than `ms`. Before that (the start: a
// state folder another process holds, a gateway's broker that does not
// answer, is waited for) and during the shutdown
// (an operator's second Ctrl-C), a signal resolves at once with 128 + its
// number, as a shell reports a process the signal ended, and says so: what
// was ACKed is already on disk (--state commits before each ACK leaves).
function catchSignals(log: Logger): { code: Promise<number>; stopWith(stop: () => Promise<void>, ms?: number): Promise<number> } {
    let stop: (() => Promise<void>) | undefined
    let ms = 3000
    let resolve: (code: number) => void = () => {}
    const code = new Promise<number>((r) => (resolve = r))
    let stopping = false
    // One handler throughout: a signal that comes with the first one
    // would be lost between removing a handler and adding another.
    const onSignal = (sig: NodeJS.Signals) => {
        if (stopping || stop === undefined) {
            const what = stopping ? "during the shutdown: exiting now, without closing the links that are left" : "before the start was complete: exiting now"
            log.error({ signal: sig }, `${sig} ${what}`)
            return resolve(128 + (osConstants.signals[sig] ?? 0))
        }
        stopping = true
        log.info({ signal: sig }, "shutting down")
        const force = setTimeout(() => {
            log.error(`shutdown took over ${ms} ms: exiting anyway`)
            resolve(1)
        }, ms)
        force.unref()
        stop().then(
            () => {
                clearTimeout(force)
                resolve(0)
            },
            (e) => {
                log.error({ err: (e as Error).message }, "shutdown failed")
                resolve(1)
            }
        )
    }
    process.on("SIGINT", onSignal)
    process.on("SIGTERM", onSignal)
    return {
        code,
        stopWith(s, m = 3000) {
            stop = s
            ms = m
            return code
        },
    }
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
    const [cmd, ...args] = argv
    if (cmd === "--version" || cmd === "-v" || cmd === "version") {
        process.stdout.write(packageVersion() + "\n")
        return 0
    }
    if (cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help") {
        process.stdout.write(USAGE + "\n")
        return cmd === undefined ? 2 : 0
    }
    if (COMMANDS[cmd] === undefined) {
        process.stderr.write(`devs-iot: unknown command ${JSON.stringify(cmd)}\n\n${USAGE}\n`)
        return 2
    }
    try {
        // `server --gateway` takes the gateway's flags: one it does not use is an error, not ignored.
        const gatewayEnv = env[envName("gateway")]
        const asGateway = cmd === "server" && (args.includes("--gateway") || (gatewayEnv !== undefined && envBoolean("gateway", gatewayEnv)))
        if (asGateway) {
            const serverOnly = Object.keys(COMMANDS["server"]!.options).filter((k) => k !== "gateway" && COMMANDS["gateway"]!.options[k] === undefined && env[envName(k)] !== undefined)
            if (serverOnly.length > 0) throw new UsageError(`${serverOnly.map(envName).join(", ")}: not used by the gateway; unset ${serverOnly.length > 1 ? "them" : "it"}`)
        }
        const { values, source, positionals } = asGateway ? readOptions("gateway", args.filter((a) => a !== "--gateway"), env) : readOptions(cmd, args, env)
        if (values["help"]) {
            process.stdout.write(help(cmd) + "\n")
            return 0
        }
        checkEnvNames(env)
        if (cmd === "sim") return await runSimCommand(values, source)
        if (cmd === "flash") return await runFlashCommand(values)
        if (cmd === "deploy") return await runDeploy(values, source, positionals, makeLogger(level(values, source), values["json"] === true), (s) => process.stdout.write(s))
        if (cmd === "keygen") {
            process.stdout.write(randomBytes(32).toString("hex") + "\n")
            return 0
        }
        if (cmd === "gateway" || asGateway) return await runGateway(values, source)
        return cmd === "server" ? await runServer(values, source) : await runClient(values, source)
    } catch (e) {
        if (e instanceof FlagError || (e as { code?: string }).code === "ECONFIG") {
            process.stderr.write(`devs-iot ${cmd}: ${(e as Error).message}\nRun 'devs-iot ${cmd} --help' for usage.\n`)
            return 2
        }
        if (e instanceof SetupError) {
            process.stderr.write(`devs-iot ${cmd}: ${e.message}\n`)
            return 1
        }
        throw e
    }
}
