// Deploy requests over the devs-iot link itself: an operator's client
// connects with an admin id that has a key in the server's key file, so the
// request is authenticated (and sealed) by the link; the server refuses any
// admin id whose link is not authenticated. A board cannot ask: its id is not
// an admin id, and the wssk side never acts on what a board sends.
//
// Lines (JSON): {"ota":"deploy","ids":[...],"sha256":"<hex>","bytes":N,"parts":K}
// then K lines {"ota":"part","data":"<base64>"}; the answer is one line
// {"ota":"report",...} or {"ota":"error","message":"..."}.
//
// These lines never reach the server's application: an admin id's lines are
// all taken for its requests, and another id's lines that begin {"ota": are
// answered with an error (not an admin; or, on a server without OTA,
// refuseDeploys()), so a deploy ends with an answer, never silence.
import type { Client } from "../client.js"
import type { Connection } from "../connection.js"
import { eachConnection } from "../each.js"
import { silentLogger, type Logger } from "../log.js"
import { LogBudget } from "../admission.js"
import type { Server } from "../server.js"
import type { DeployReport, Ota } from "./ota.js"
import { checkImage, MAX_IMAGE_BYTES, sha256 } from "./wssk.js"

const PART_BYTES = 3072 // 4 KB lines in base64

// The lines of an OTA request, as requestDeploy writes them.
const OTA_LINE = /^\{"ota":/
const PART_LINE = /^\{"ota":"part"/

// What a peer's lines make the admin side log: warnings at most the server's
// maxWarningsPerSecond a second, the next logged line counting those that were not.
type Warn = (kind: string, fields: object, msg: string) => void

function warnings(server: Server, log: Logger): Warn {
    const budget = new LogBudget(server.limits.maxWarningsPerSecond)
    return (kind, fields, msg) => {
        const extra = budget.pass(kind, performance.now())
        if (extra) log.warn({ ...fields, ...extra }, msg)
    }
}

export function attachAdmins(server: Server, ota: Ota, adminIds: string[], logger: Logger = silentLogger()): void {
    const log = logger.child({ ota: "admin" })
    const warn = warnings(server, log)
    const admins = new Set(adminIds)
    eachConnection(server, (conn) => {
        if (!admins.has(conn.id)) return refuseOn(conn, `${JSON.stringify(conn.id)} is not an OTA admin of this server`, warn)
        const lines = new Lines((dropped) => {
            warn("dropped", { admin: conn.id, address: conn.address, dropped }, `OTA request lines dropped: over ${MAX_QUEUED_CHARS} bytes held while a deploy runs`)
            conn.write(JSON.stringify({ ota: "error", message: `${dropped} request lines dropped: over ${MAX_QUEUED_CHARS} bytes (one whole request) held while a deploy runs; send the next request after the report` })).catch(() => {})
        })
        conn.setClaim({ wants: () => true, take: (line) => lines.push(line) })
        void serve(conn, lines, ota, log, warn)
    })
}

// On a server without OTA: every deploy request is answered with an error
// saying `why` (and logged), its lines kept from the application.
export function refuseDeploys(server: Server, why: string, logger: Logger = silentLogger()): void {
    const warn = warnings(server, logger.child({ ota: "admin" }))
    eachConnection(server, (conn) => refuseOn(conn, why, warn))
}

function refuseOn(conn: Connection, why: string, warn: Warn): void {
    conn.setClaim({
        wants: (line) => OTA_LINE.test(line),
        take: (line) => {
            if (!line.startsWith('{"ota":"deploy"')) return // its parts, or a stray line
            warn("refused", { client: conn.id, address: conn.address }, `OTA request from ${conn.id} refused: ${why}`)
            conn.write(JSON.stringify({ ota: "error", message: why })).catch(() => {})
        },
    })
}

// Request lines held while the loop is busy (a deploy runs): one whole
// request of the largest image (its parts in base64, with their JSON).
export const MAX_QUEUED_CHARS = Math.ceil(MAX_IMAGE_BYTES / PART_BYTES) * (Math.ceil(PART_BYTES / 3) * 4 + 32) + 4096

// An admin link's lines, in order, for its request loop. Past
// MAX_QUEUED_CHARS the lines held are dropped, `overflow` is told once, and
// the dropped request's parts that follow are dropped too; so are the parts
// of a request answered with an error (skipParts), each of which would
// otherwise get an answer of its own, read by the admin's next request.
class Lines {
    private lines: string[] = []
    private chars = 0
    private skipParts = false
    private waiting: ((line: string) => void) | undefined = undefined

    constructor(private overflow: (dropped: number) => void) {}

    push(line: string): void {
        if (this.skipParts && PART_LINE.test(line)) return
        this.skipParts = false
        const w = this.waiting
        this.waiting = undefined
        if (w) return w(line)
        if (this.chars + line.length > MAX_QUEUED_CHARS) {
            const dropped = this.lines.length + 1
            this.lines = []
            this.chars = 0
            this.skipParts = true
            return this.overflow(dropped)
        }
        this.lines.push(line)
        this.chars += line.length
    }

    // Drops the part lines held at the front and those that come next, up to the next other line.
    skipRest(): void {
        while (this.lines.length > 0 && PART_LINE.test(this.lines[0]!)) this.chars -= this.lines.shift()!.length
        this.skipParts = this.lines.length === 0
    }

    next(): Promise<string> {
        const line = this.lines.shift()
        if (line !== undefined) {
            this.chars -= line.length
            return Promise.resolve(line)
        }
        return new Promise((resolve) => (this.waiting = resolve))
    }
}

// One request after the other; whatever goes wrong with one is answered
// and logged, and the next is served (never a rejection nobody handles).
async function serve(conn: Connection, lines: Lines, ota: Ota, log: Logger, warn: Warn): Promise<void> {
    const reply = (o: object) => conn.write(JSON.stringify(o)).catch(() => {})
    for (;;) {
        const line = await lines.next()
        try {
            await request(conn, line, lines, ota, warn, reply)
        } catch (e) {
            log.error({ admin: conn.id, stack: (e as Error)?.stack }, `OTA request failed: ${(e as Error)?.message}`)
            await reply({ ota: "error", message: `request failed: ${(e as Error)?.message}` })
        }
        // A request is answered once: the parts it left unread are not requests.
        lines.skipRest()
    }
}

async function request(conn: Connection, line: string, lines: Lines, ota: Ota, warn: Warn, reply: (o: object) => Promise<unknown>): Promise<void> {
    if (!conn.authenticated) {
        warn("not-authenticated", { admin: conn.id, address: conn.address }, "OTA request on a link that is not authenticated: refused")
        await reply({ ota: "error", message: `admin id ${conn.id} must authenticate (give it a key in the server's key file, not in allow-plain)` })
        return
    }
    const req = jsonObject(line)
    if (typeof req === "string") {
        await reply({ ota: "error", message: req })
        return
    }
    if (req.ota !== "deploy") {
        await reply({ ota: "error", message: `unknown request ${JSON.stringify(req.ota)}` })
        return
    }
    const r = deployRequest(req)
    if (typeof r === "string") {
        await reply({ ota: "error", message: `deploy request: ${r}` })
        return
    }
    const { ids, sha256: hash, bytes, parts } = r
    const chunks: Buffer[] = []
    let got = 0
    let bad = ""
    for (let i = 0; i < parts; i++) {
        const p = jsonObject(await lines.next())
        if (typeof p === "string") {
            bad = `part ${i}: ${p}`
            break
        }
        if (p.ota !== "part" || typeof p.data !== "string") {
            bad = `part ${i}: expected {"ota":"part","data":...}`
            break
        }
        const c = Buffer.from(p.data, "base64")
        got += c.length
        if (got > bytes) {
            bad = `more than ${bytes} bytes`
            break
        }
        chunks.push(c)
    }
    const image = Buffer.concat(chunks)
    if (!bad && image.length !== bytes) bad = `got ${image.length} bytes, announced ${bytes}`
    if (!bad && sha256(image).toString("hex") !== hash) bad = "the image does not match its sha256"
    if (bad) {
        await reply({ ota: "error", message: bad })
        return
    }
    try {
        const report = await ota.deploy(ids, image, conn.id)
        await reply({ ota: "report", ...report })
    } catch (e) {
        await reply({ ota: "error", message: (e as Error).message })
    }
}

// A line's JSON object, or what it is instead ("null" parses, but has no fields).
type Fields = { ota?: unknown; data?: unknown; ids?: unknown; sha256?: unknown; bytes?: unknown; parts?: unknown }
function jsonObject(line: string): Fields | string {
    let v: unknown
    try {
        v = JSON.parse(line)
    } catch {
        return "not JSON"
    }
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Fields) : `not a JSON object: ${line.slice(0, 40)}`
}

const MAX_PARTS = Math.ceil(MAX_IMAGE_BYTES / PART_BYTES)

// A deploy request's fields, or what is wrong with them.
function deployRequest(req: Fields): { ids: string[]; sha256: string; bytes: number; parts: number } | string {
    const { ids, sha256: hash, bytes, parts } = req
    const whole = (v: unknown, max: number): v is number => typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= max
    if (!Array.isArray(ids) || !ids.every((x) => typeof x === "string")) return "ids must be a list of board ids (strings)"
    if (typeof hash !== "string" || !/^[0-9a-f]{64}$/.test(hash)) return "sha256 must be 64 lower-case hex digits"
    if (!whole(bytes, MAX_IMAGE_BYTES)) return `bytes must be a whole number from 1 to ${MAX_IMAGE_BYTES} (the largest image), got ${JSON.stringify(bytes)}`
    if (!whole(parts, MAX_PARTS)) return `parts must be a whole number from 1 to ${MAX_PARTS}, got ${JSON.stringify(parts)}`
    return { ids: ids as string[], sha256: hash, bytes, parts }
}

// Requests on one Client go one after the other: the lines of two would
// interleave, and an answer names no request (the server answers in order).
const pending = new WeakMap<Client, Promise<unknown>>()

// The operator's side: sends the request on an (authenticated) client link
// and resolves with the server's report; rejects with the server's error.
// A second call on the same Client waits until the first has its answer.
export async function requestDeploy(client: Client, ids: string[], image: Buffer): Promise<DeployReport> {
    checkImage(image) // a bad image is named here, before a byte is sent
    const before = pending.get(client)
    const mine = (before ?? Promise.resolve()).then(() => deployOnce(client, ids, image))
    const done = mine.catch(() => {})
    pending.set(client, done)
    try {
        return await mine
    } finally {
        if (pending.get(client) === done) pending.delete(client)
    }
}

async function deployOnce(client: Client, ids: string[], image: Buffer): Promise<DeployReport> {
    const parts: string[] = []
    for (let i = 0; i < image.length; i += PART_BYTES) parts.push(image.subarray(i, i + PART_BYTES).toString("base64"))
    await client.write(JSON.stringify({ ota: "deploy", ids, sha256: sha256(image).toString("hex"), bytes: image.length, parts: parts.length }))
    for (const data of parts) await client.write(JSON.stringify({ ota: "part", data }))
    for (;;) {
        const line = await client.readline()
        let o: { ota?: string; message?: string } & Partial<DeployReport>
        try {
            o = JSON.parse(line)
        } catch {
            continue
        }
        if (o.ota === "error") throw new Error(`server: ${o.message}`)
        if (o.ota === "report") return o as DeployReport
    }
}
