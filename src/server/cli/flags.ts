// The command line's whole-number settings that are the Node shell's own
// (ports it listens on, the demo app's pace, shutdown, OTA): range and default
// defined once here, the help text and docs/settings.md made from them. Also
// a client's key flags (client, deploy) and their reading. The
// settings a board shares (its port, timeout, interval, watchdog) come from
// src/shared, where the board's settings table reads them too.
import { INTERVAL, PORT, type Range } from "../../shared/config.js"
import { WATCHDOG } from "../../shared/watchdog.js"
import { LISTEN_PORT } from "../server.js"
import { KeyFileError, modeWarning, parseClientKey, readSecret } from "../keys.js"
import type { Logger } from "../log.js"

// A flag of a command (main.ts, ota.ts): its help, and what it takes.
export interface Opt {
    type: "string" | "boolean"
    help: string
    arg?: string
    option?: string // the library option it sets, where its name is not the flag's in camelCase (docs/settings.md)
    range?: IntOpt["range"] // a whole number: its range and default
}

export interface IntOpt {
    type: "string"
    arg: string
    help: string
    range: Range
}

// A flag taking a whole number in `r`; its help ends with the default.
function intFlag(arg: string, r: Range, doc: string, dfltText?: string): IntOpt {
    return { type: "string", arg, help: `${doc} (default ${dfltText ?? r.dflt})`, range: r }
}

export const FLAGS = {
    listenPort: intFlag("N", LISTEN_PORT, "TCP port; 0 picks a free one"),
    serverPort: intFlag("N", PORT, "server port"),
    serverHost: { type: "string", arg: "HOST", help: "server address (default 127.0.0.1)" } as const,
    // A client's key (client, deploy): read by clientKey() below.
    clientKey: { type: "string", arg: "HEX", help: "this client's key (64 hex digits): authenticate, and refuse a server that does not; prefer the environment or --key-file (a flag is visible to every user)" } as const,
    clientKeyFile: { type: "string", arg: "FILE", help: "a file holding this client's key (64 hex digits); client: SIGHUP re-reads it and reconnects" } as const,
    appInterval: intFlag("MS", { min: 100, max: 3600000, dflt: INTERVAL.dflt }, "demo app: ms between messages to each board"),
    boardInterval: intFlag("MS", INTERVAL, "ms between the app's messages (the board's IOT_INTERVAL)"),
    // The simulated board's watchdog is off unless asked for: a run in the
    // simulator is watched by whoever started it.
    boardWatchdog: intFlag("MS", { min: WATCHDOG.min, max: WATCHDOG.max, dflt: 0 }, "reboot (restart) after this long without progress; 0 = off (a board's default: " + WATCHDOG.dflt + ")"),
    shutdownTimeout: intFlag("MS", { min: 100, max: 600000, dflt: 3000 }, "on SIGTERM/SIGINT, exit (status 1) if closing the links takes longer"),
    brokerPort: intFlag("N", { min: 0, max: 65535, dflt: 1883 }, "the embedded broker's port; 0 picks a free one"),
    httpPort: intFlag("N", { min: 0, max: 65535, dflt: 0 }, "serve metrics (/metrics), the status API (/api/boards) and the dashboard (/) on this port; 0 picks a free one", "off"),
    otaPort: intFlag("N", { min: 0, max: 65535, dflt: 8124 }, "port of the OTA gateway that boards reach with wssk"),
    otaLinkUpWithin: intFlag("MS", { min: 1000, max: 3600000, dflt: 60000 }, "a new program must bring its link up this soon, or it is rolled back"),
    otaSessionWithin: intFlag("MS", { min: 1000, max: 3600000, dflt: 75000 }, "wait this long for a board's OTA session (boards retry every 32 s)"),
    // The default is per board: the server deploys to one board after the other.
    deployReportWithin: intFlag("MS", { min: 1000, max: 86400000, dflt: 600000 }, "give up (exit 1) when the server's report has not come this long after the start; the server goes on with a deploy it began", "600000 a board"),
}

// The value of a whole-number flag or its environment variable, checked
// against its range: undefined when absent and the flag has no default.
export function readInt(raw: string | boolean | undefined, what: string, r: Range): number
export function readInt(raw: string | boolean | undefined, what: string, r: Range, optional: true): number | undefined
export function readInt(raw: string | boolean | undefined, what: string, r: Range, optional?: true): number | undefined {
    if (raw === undefined) return optional ? undefined : r.dflt
    const s = String(raw).trim()
    const n = /^\d+$/.test(s) ? Number(s) : NaN
    if (!Number.isSafeInteger(n) || n < r.min || n > r.max) throw new FlagError(`${what} must be a whole number from ${r.min} to ${r.max}, got ${JSON.stringify(raw)}`)
    return n
}

export class FlagError extends Error {}

type Values = Record<string, string | boolean | undefined>

// A key given as 64 hex digits, checked; `name` is where it came from (--key, DEVS_IOT_KEY).
export function hexKey(v: string, name: string): string {
    if (!/^[0-9a-fA-F]{64}$/.test(v.trim())) throw new FlagError(`${name} must be 64 hex digits (32 bytes), got ${v.trim().length} characters`)
    return v.trim()
}

// The key in a --key-file (FlagError naming the file if it cannot be used; never showing its text).
export function readKeyFile(file: string): Buffer {
    try {
        return parseClientKey(readSecret(file, "key file"), file)
    } catch (e) {
        if (e instanceof KeyFileError) throw new FlagError(e.message)
        throw e
    }
}

// The client's key from --key-file or --key (FLAGS.clientKeyFile,
// FLAGS.clientKey, or their environment variables), once; undefined when
// neither is given. Warns of a key on the command line and of a key file
// others can read.
export function clientKey(values: Values, source: Record<string, string>, log: Logger): { key: Buffer | undefined; file: string | undefined } {
    const file = typeof values["key-file"] === "string" ? values["key-file"] : undefined
    const hex = typeof values["key"] === "string" ? values["key"] : undefined
    if (file !== undefined && hex !== undefined) throw new FlagError(`give the key once: ${source["key"]} or ${source["key-file"]}, not both`)
    const key = file !== undefined ? readKeyFile(file) : hex !== undefined ? Buffer.from(hexKey(hex, source["key"] ?? "--key"), "hex") : undefined
    if (source["key"] === "--key") log.warn("--key on the command line is visible to every user of this machine (ps): set DEVS_IOT_KEY in the environment or use --key-file FILE instead")
    if (file !== undefined) {
        const w = modeWarning(file, "key file")
        if (w !== "") log.warn({ file }, w)
    }
    return { key, file }
}
