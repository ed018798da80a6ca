// Command-line glue for OTA: the server's --ota-* options and the `deploy`
// command. Each setting is defined once here (name, range, default, doc).
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { LinkError } from "../../shared/index.js"
import { TIMEOUT } from "../../shared/config.js"
import { Client } from "../client.js"
import { clientKey, FLAGS, readInt, type Opt } from "./flags.js"
import { KeyFileError, loadOneKeyFile } from "../keys.js"
import type { Logger } from "../log.js"
import type { Server } from "../server.js"
import type { Fleet } from "../fleet.js"
import { attachAdmins, refuseDeploys, requestDeploy } from "../ota/admin.js"
import { OtaGateway } from "../ota/gateway.js"
import { Ota, type DeployReport } from "../ota/ota.js"
import { JacdacHost, runBoardVm, type BoardVm } from "../ota/simboard.js"
import { checkImage, MAX_IMAGE_BYTES } from "../ota/wssk.js"

const CONNECT_WITHIN = 15000 // ms for the deploy command to reach the server

type Values = Record<string, string | boolean | undefined>

export const OTA_SERVER_OPTIONS: Record<string, Opt> = {
    "ota-keys": { type: "string", arg: "FILE", help: "turns OTA on: the boards' wssk keys, one '<id> <64 hex digits>' a line (not the link keys)" },
    "ota-port": FLAGS.otaPort,
    "ota-admins": { type: "string", arg: "ID,ID", help: "client ids allowed to request deploys; each needs a key in --keys" },
    "ota-images": { type: "string", arg: "DIR", help: "images kept by SHA-256 (a rollback needs the previous one; put the flashed image here)" },
    "ota-link-up-within": FLAGS.otaLinkUpWithin,
    "ota-session-within": FLAGS.otaSessionWithin,
}

export const OTA_SIM_OPTIONS: Record<string, Opt> = {
    "ota-url": { type: "string", arg: "URL", help: "wssk connection string ws://wssk:<key>@<host>:<port>/wssk/<id>, given to the board over Jacdac as over USB; its flash is kept in .devs-iot-sim/<id>/" },
    out: { type: "string", arg: "FILE", help: "only build: write the board's image (.devs) to FILE, e.g. for devs-iot deploy" },
    image: { type: "string", arg: "FILE", help: "run this image (from --out) instead of building: the board then runs exactly the image kept for rollback" },
}

export const DEPLOY_COMMAND = {
    summary: "send a program (.devs) to boards over the air, through a server run with --ota-keys",
    options: {
        id: { type: "string", arg: "ID,ID", help: "the boards (required)" },
        host: FLAGS.serverHost,
        port: FLAGS.serverPort,
        admin: { type: "string", arg: "ID", help: "this operator's client id, one of the server's --ota-admins (required)" },
        key: FLAGS.clientKey,
        "key-file": FLAGS.clientKeyFile,
        "report-within": FLAGS.deployReportWithin,
        timeout: { type: "string", arg: "MS", help: `${TIMEOUT.doc}: the server's --timeout (default ${TIMEOUT.dflt})` },
    } as Record<string, Opt>,
}

function config(message: string): LinkError {
    return new LinkError("ECONFIG", message)
}

// A bad value throws FlagError, which the command line reports (exit 2).
function int(values: Values, name: string): number {
    return readInt(values[name], `--${name}`, OTA_SERVER_OPTIONS[name]!.range!)
}

function list(v: string | boolean | undefined): string[] {
    return typeof v === "string" ? v.split(",").map((s) => s.trim()).filter((s) => s !== "") : []
}

// The board's console lines and exceptions from its sessions into the status API.
export function logsToFleet(gateway: OtaGateway, fleet: Fleet): void {
    gateway.on("log", (id, kind, text) => kind === "console" && fleet.boardLog(id, text))
    gateway.on("exception", (id, e) => fleet.boardException(id, e.name, e.message))
}

// Starts the gateway when --ota-keys is given; returns a stop function.
// Without it, a deploy request is answered with an error that says so.
export async function startOta(server: Server, values: Values, log: Logger, linkKeyed: string[], allowPlain: string[], fleet?: Fleet): Promise<(() => Promise<void>) | undefined> {
    const file = values["ota-keys"]
    if (typeof file !== "string") {
        for (const n of Object.keys(OTA_SERVER_OPTIONS)) if (values[n] !== undefined) throw config(`--${n} needs --ota-keys`)
        refuseDeploys(server, "over-the-air updates are off on this server (it runs without --ota-keys)", log)
        return undefined
    }
    let keys: Map<string, Buffer>
    try {
        keys = loadOneKeyFile(file, "--ota-keys") // the wssk master key of each board
    } catch (e) {
        if (e instanceof KeyFileError) throw config(e.message)
        throw e
    }
    const admins = list(values["ota-admins"])
    if (!admins.length) throw config("--ota-keys needs --ota-admins: the client ids that may request deploys")
    for (const a of admins) {
        if (!linkKeyed.includes(a)) throw config(`--ota-admins: ${JSON.stringify(a)} has no key in --keys; an admin must authenticate`)
        if (allowPlain.includes(a)) throw config(`--ota-admins: ${JSON.stringify(a)} is in --allow-plain; an admin must authenticate`)
        if (keys.has(a)) throw config(`--ota-admins: ${JSON.stringify(a)} is also a board in --ota-keys; a board must not request deploys`)
    }
    // A deploy counts the board's link coming up as its new program working.
    const open = [...keys.keys()].filter((b) => !linkKeyed.includes(b) || allowPlain.includes(b))
    if (open.length > 0)
        log.warn({ boards: open }, `OTA boards whose link is not authenticated (no --keys line, or --allow-plain): ${open.join(", ")}; anyone who connects with such an id after a deploy makes a broken program look good (no rollback); give them link keys`)
    const gateway = new OtaGateway({ port: int(values, "ota-port"), host: typeof values["host"] === "string" ? values["host"] : "0.0.0.0", keys, logger: log })
    const imagesDir = typeof values["ota-images"] === "string" ? values["ota-images"] : undefined
    const options = { server, gateway, imagesDir, linkUpWithin: int(values, "ota-link-up-within"), sessionWithin: int(values, "ota-session-within"), logger: log }
    let ota: Ota
    try {
        ota = new Ota(options) // makes the image folder
    } catch (e) {
        throw config(`--ota-images ${imagesDir}: cannot use it as the image folder: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
    }
    attachAdmins(server, ota, admins, log)
    if (fleet) logsToFleet(gateway, fleet)
    try {
        await gateway.listen()
    } catch (e) {
        const err = e as NodeJS.ErrnoException
        throw config(`--ota-port ${gateway.port || int(values, "ota-port")}: cannot listen: ${err.code === "EADDRINUSE" ? "address already in use" : err.message}`)
    }
    log.info({ port: gateway.port, boards: keys.size, admins }, "OTA ready")
    return () => gateway.close()
}

// The image file, checked as the board's deploy checks it; its size is
// looked at before it is read, so a wrong path (a disk image, a device) is
// not read whole.
function readImage(file: string): Buffer {
    let image: Buffer
    try {
        const st = statSync(file)
        if (!st.isFile()) throw new Error("not a regular file")
        if (st.size > MAX_IMAGE_BYTES) throw new Error(`${st.size} bytes is over ${MAX_IMAGE_BYTES}, the largest image`)
        image = readFileSync(file)
    } catch (e) {
        throw config(`${file}: cannot deploy: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
    }
    try {
        checkImage(image, file)
    } catch (e) {
        throw config((e as Error).message)
    }
    return image
}

// `devs-iot deploy --id X,Y --admin A --key-file F image.devs`; resolves with the exit code.
export async function runDeploy(values: Values, source: Record<string, string>, positionals: string[], log: Logger, out: (s: string) => void): Promise<number> {
    const ids = list(values["id"])
    if (!ids.length) throw config("--id is required (or DEVS_IOT_ID): the boards to deploy to")
    const admin = values["admin"]
    if (typeof admin !== "string" || admin === "") throw config("--admin is required (or DEVS_IOT_ADMIN)")
    const { key } = clientKey(values, source, log)
    if (key === undefined) throw config("the admin id's key is required: --key-file FILE (or DEVS_IOT_KEY_FILE), or DEVS_IOT_KEY")
    if (positionals.length !== 1) throw config(`give one image file (.devs), got ${positionals.length}`)
    const image = readImage(positionals[0]!)
    const port = readInt(values["port"], "--port", FLAGS.serverPort.range)
    const host = typeof values["host"] === "string" ? values["host"] : "127.0.0.1"
    // The whole run is bounded: a server that never answers (an older one
    // without OTA, say) must not hold the operator's terminal for ever.
    const within = readInt(values["report-within"], "--report-within", FLAGS.deployReportWithin.range, true) ?? FLAGS.deployReportWithin.range.dflt * ids.length
    const deadline = performance.now() + within
    const timeout = readInt(values["timeout"], "--timeout", TIMEOUT)
    const client = new Client({ id: admin, host, port, key, timeout, logger: log }).start()
    let t: NodeJS.Timeout | undefined = undefined
    const byDeadline = <T>(p: Promise<T>, ms: number): Promise<T | undefined> => Promise.race([p, new Promise<undefined>((r) => (t = setTimeout(() => r(undefined), Math.max(0, ms))))]).finally(() => clearTimeout(t))
    try {
        const connectWithin = Math.min(CONNECT_WITHIN, within)
        if ((await byDeadline(client.connected().then(() => true), connectWithin)) === undefined) {
            log.error(`cannot reach the server at ${host}:${port} within ${connectWithin} ms`)
            return 1
        }
        const report: DeployReport | undefined = await byDeadline(requestDeploy(client, ids, image), deadline - performance.now())
        if (report === undefined) {
            log.error(`no answer from the server within ${within} ms (--report-within): does it run with --ota-keys, and ${JSON.stringify(admin)} in its --ota-admins? A deploy it began goes on; its log says how it ended`)
            return 1
        }
        out(JSON.stringify(report, null, 2) + "\n")
        return report.boards.every((b) => b.outcome === "deployed" || b.outcome === "unchanged") ? 0 : 1
    } catch (e) {
        log.error((e as Error).message)
        return 1
    } finally {
        await client.close()
    }
}

// Runs a simulated board that keeps its flash in .devs-iot-sim/<id>/ (like a
// real board's) and receives `url` as its wssk connection string.
export async function runSimWithOta(image: string, id: string, url: string, onLine: (line: string) => void): Promise<{ vm: BoardVm; stop: () => Promise<void> }> {
    if (!/^wss?:\/\/(wssk:)?[0-9a-fA-F]{64}@[^/:]+(:\d+)?\/\S*$/.test(url)) throw config(`--ota-url must be ws://wssk:<64 hex digits>@<host>:<port>/wssk/<id>, got ${JSON.stringify(url.replace(/[0-9a-fA-F]{64}/, "<key>"))}`)
    const dir = join(".devs-iot-sim", id.replace(/[^A-Za-z0-9._-]/g, "_"))
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, "devsconfig.json"), "{}\n")
    const jacdac = new JacdacHost()
    const vm = runBoardVm(image, await jacdac.listen(), dir, onLine)
    void jacdac.setConnectionString(url).then(
        () => onLine(`devs-iot sim: wssk connection string set (${url.replace(/[0-9a-fA-F]{64}/, "<key>")})`),
        (e: Error) => onLine(`devs-iot sim: connection string not set: ${e.message}`)
    )
    return {
        vm,
        stop: async () => {
            await vm.stop()
            await jacdac.close()
        },
    }
}
