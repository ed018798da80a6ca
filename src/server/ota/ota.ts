// Over-the-air deploy for the boards of one devs-iot server: frees a board's
// socket (closes its link and keeps it off while the deploy is pending), lets
// the board's wssk session in, checks the hash before and after, then waits
// for the new program to bring its link up; if it does not within
// `linkUpWithin`, deploys the previous image again (rollback). The previous
// image must be in the image store, or the deploy is refused for that board
// before anything is written. Every deploy is logged: who, hash, boards,
// outcome per board.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { Connection } from "../connection.js"
import { silentLogger, type Logger } from "../log.js"
import type { Server } from "../server.js"
import { DeployRun, type RunResult } from "./deployrun.js"
import { BOARD_PATH, MAX_WAIT_MS, OtaGateway } from "./gateway.js"
import { intIn } from "../../shared/config.js"
import { checkImage, MAX_IMAGE_BYTES, sha256 } from "./wssk.js"

interface OtaOptions {
    server: Server
    gateway: OtaGateway
    imagesDir?: string // where images are kept by hash (rollback needs the previous one); default: memory only
    linkUpWithin?: number // ms for the new program's link; default 60000
    sessionWithin?: number // ms for the board's wssk session once its socket is free; default 75000 (its retry period is 32 s)
    deployWithin?: number // ms for the deploy itself once the session is up; default 120000
    logger?: Logger
}

// The hash a board without a program reports (deployrun.ts).
const NO_PROGRAM = "0".repeat(64)

// Without an image folder, images are held in memory: those the boards are
// known to run (the last outcome of a deploy to each), and besides them at
// most this many, the least recently used forgotten first. With a folder,
// memory holds only its index (hash -> file), read again when a hash is missing.
export const MAX_IMAGES_IN_MEMORY = 8

export type Outcome = "deployed" | "unchanged" | "rolled-back" | "rollback-failed" | "failed" | "refused"

interface BoardDeployReport {
    id: string
    outcome: Outcome
    before?: string // SHA-256 of the program the board ran
    after?: string // SHA-256 it runs now, as read back (when known)
    detail: string
}

export interface DeployReport {
    who: string
    sha256: string
    bytes: number
    boards: BoardDeployReport[]
}

export class Ota {
    private server: Server
    private gateway: OtaGateway
    private log: Logger
    private images = new Map<string, Buffer>() // no image folder: hash -> image, least recently used first
    private files = new Map<string, string>() // image folder: hash -> file
    private running = new Map<string, string>() // board id -> hash of the program it runs, as the last deploy to it left it
    private pending = new Set<string>()
    private busy = new Set<string>() // boards of a deploy from its request to its outcome (rollback included)
    private lastConnect = new Map<string, number>() // board id -> when its link last came up, for busy boards only
    private readonly linkUpWithin: number
    private readonly sessionWithin: number
    private readonly deployWithin: number

    constructor(private opts: OtaOptions) {
        this.server = opts.server
        this.gateway = opts.gateway
        this.log = (opts.logger ?? silentLogger()).child({ ota: "deploy" })
        this.linkUpWithin = intIn("linkUpWithin", opts.linkUpWithin, 60000, 1000, MAX_WAIT_MS)
        this.sessionWithin = intIn("sessionWithin", opts.sessionWithin, 75000, 1000, MAX_WAIT_MS)
        this.deployWithin = intIn("deployWithin", opts.deployWithin, 120000, 1000, MAX_WAIT_MS)
        if (opts.imagesDir) {
            mkdirSync(opts.imagesDir, { recursive: true })
            this.scan()
        }
        // While a board's deploy is pending, its link must not hold the one socket.
        // A link turned away meanwhile is the old program's: it does not count
        // as the new program's link coming up.
        this.server.on("connect", (conn: Connection) => {
            if (this.pending.has(conn.id)) return void conn.disconnect("OTA deploy pending")
            // Only a board being deployed to waits for its link (linkUp).
            if (this.busy.has(conn.id) && this.isBoardLink(conn)) this.lastConnect.set(conn.id, performance.now())
        })
    }

    // Adds an image to the store (e.g. the one the boards were flashed with,
    // so that the first OTA deploy can be rolled back); returns its SHA-256.
    keep(image: Buffer): string {
        checkImage(image)
        const h = sha256(image).toString("hex")
        const dir = this.opts.imagesDir
        if (dir) {
            const known = this.files.get(h)
            if (known && existsSync(known)) return h
            const file = join(dir, `${h}.devs`)
            writeFileSync(file, image)
            this.files.set(h, file)
            return h
        }
        this.images.delete(h)
        this.images.set(h, Buffer.from(image))
        this.forget()
        return h
    }

    // The memory store past its cap: the least recently used images no board is known to run go.
    private forget(): void {
        const runs = new Set(this.running.values())
        let spare = [...this.images.keys()].filter((h) => !runs.has(h)).length - MAX_IMAGES_IN_MEMORY
        for (const h of this.images.keys()) {
            if (spare <= 0) break
            if (runs.has(h)) continue
            this.images.delete(h)
            spare--
        }
    }

    // Indexes the .devs files of the image folder anew (an operator may add
    // or remove one at any time); a file that is not an image is skipped
    // with a warning, one too large for an image without being read.
    private scan(): void {
        const dir = this.opts.imagesDir
        if (!dir) return
        let names: string[]
        try {
            names = readdirSync(dir)
        } catch (e) {
            return void this.log.warn({ dir }, `image folder not readable: ${(e as Error).message}`)
        }
        const files = new Map<string, string>()
        for (const f of names) {
            if (!f.endsWith(".devs")) continue
            const file = join(dir, f)
            try {
                const st = statSync(file)
                // A FIFO or a device would block the process on its read, or never end.
                if (!st.isFile()) throw new Error("not a regular file")
                if (st.size > MAX_IMAGE_BYTES) throw new Error(`${st.size} bytes is over ${MAX_IMAGE_BYTES}`)
                const image = readFileSync(file)
                checkImage(image)
                files.set(sha256(image).toString("hex"), file)
            } catch (e) {
                this.log.warn({ file }, `not an image: ${(e as Error).message}`)
            }
        }
        this.files = files
    }

    // The image with this SHA-256 from the store, or undefined.
    private image(hash: string): Buffer | undefined {
        if (!this.opts.imagesDir) {
            const b = this.images.get(hash)
            if (b) {
                this.images.delete(hash)
                this.images.set(hash, b)
            }
            return b
        }
        for (let tries = 0; tries < 2; tries++) {
            if (!this.files.has(hash) || tries > 0) this.scan()
            const file = this.files.get(hash)
            if (!file) continue
            try {
                const b = readFileSync(file)
                if (sha256(b).toString("hex") === hash) return b
            } catch {
                // gone or unreadable: scan again
            }
        }
        return undefined
    }

    // What a board runs after a deploy's outcome (undefined: not known).
    private ran(id: string, hash: string | undefined): void {
        if (hash === undefined) this.running.delete(id)
        else this.running.set(id, hash)
    }

    // Deploys `image` to each board in turn. `who` names the requester for the log.
    // A board is one deploy's from the request to its outcome: a second
    // deploy to it is refused, also while the first waits for its link or
    // rolls back.
    async deploy(ids: string[], image: Buffer, who: string): Promise<DeployReport> {
        checkImage(image)
        if (!ids.length) throw new Error("no board ids given")
        // A board twice would be free between its two runs: a deploy from another admin could start on it.
        const twice = ids.find((id, i) => ids.indexOf(id) !== i)
        if (twice !== undefined) throw new Error(`board id ${JSON.stringify(twice)} given twice`)
        for (const id of ids) {
            if (!BOARD_PATH.test(`/wssk/${id}`)) throw new Error(`board id ${JSON.stringify(id)} cannot be used in a wssk path (letters, digits, . _ : - only)`)
            if (!this.gateway.hasKey(id)) throw new Error(`no OTA key for board ${JSON.stringify(id)}`)
            if (this.busy.has(id)) throw new Error(`a deploy to ${JSON.stringify(id)} is already running`)
        }
        const left = new Set(ids)
        for (const id of left) this.busy.add(id)
        const release = (id: string) => {
            this.busy.delete(id)
            this.lastConnect.delete(id)
            left.delete(id)
        }
        try {
            const hash = this.keep(image)
            this.log.info({ who, sha256: hash, bytes: image.length, boards: ids }, "OTA deploy requested")
            const report: DeployReport = { who, sha256: hash, bytes: image.length, boards: [] }
            for (const id of ids) {
                const r = await this.deployOne(id, image)
                this.ran(id, r.outcome === "deployed" || r.outcome === "unchanged" ? r.after : r.outcome === "refused" || r.outcome === "rolled-back" ? r.before : undefined)
                release(id)
                report.boards.push(r)
                this.log[r.outcome === "deployed" || r.outcome === "unchanged" ? "info" : "warn"]({ who, sha256: hash, ...r }, "OTA deploy outcome")
            }
            this.log.info({ who, sha256: hash, boards: report.boards.map((b) => `${b.id}:${b.outcome}`) }, "OTA deploy done")
            return report
        } finally {
            for (const id of left) release(id)
        }
    }

    // A link that may count as the board's program coming up: a board with
    // an OTA key, and, if its id has a link key, authenticated (else anyone
    // connecting as an --allow-plain id could pass a broken deploy).
    private isBoardLink(conn: Connection): boolean {
        if (!this.gateway.hasKey(conn.id)) return false
        return conn.authenticated || !this.server.isKeyed(conn.id)
    }

    private async deployOne(id: string, image: Buffer): Promise<BoardDeployReport> {
        let before: string | undefined = undefined
        // Held from here, whatever the store forgets meanwhile.
        let previous: Buffer | undefined = undefined
        const run = new DeployRun(image, (b) => {
            before = b
            // A board with no program has nothing a rollback could lose.
            if (b === NO_PROGRAM) return undefined
            previous = this.image(b)
            if (previous) return undefined
            return `the board runs ${b}, which is not in the image store${this.opts.imagesDir ? ` (${this.opts.imagesDir})` : ""}: add that image so a rollback is possible`
        })
        const first = await this.runOnBoard(id, run)
        before = first.before ?? before
        // Refused only if deploy_start was never sent: once it was, the board may have erased its program.
        if (!first.ok && !first.started) return { id, outcome: "refused", before, detail: first.error ?? "refused" }
        if (first.ok && first.unchanged) return { id, outcome: "unchanged", before, after: first.after, detail: "the board already runs this image" }
        if (first.ok && (await this.linkUp(id, first.since))) return { id, outcome: "deployed", before, after: first.after, detail: "hash checked; link up" }
        // The new program is on the board (or a part of it): put the old one back.
        const why = first.ok ? `the new program did not bring its link up within ${this.linkUpWithin} ms` : `deploy failed: ${first.error}`
        if (!previous) return { id, outcome: "failed", before, after: first.after, detail: `${why}; no previous image to roll back to${before === NO_PROGRAM ? " (the board had no program)" : ""}` }
        this.log.warn({ board: id, reason: why, to: before }, "OTA rollback")
        const back = await this.runOnBoard(id, new DeployRun(previous))
        if (!back.ok) return { id, outcome: "rollback-failed", before, after: back.after, detail: `${why}; rollback: ${back.error}` }
        const up = await this.linkUp(id, back.since)
        return { id, outcome: "rolled-back", before, after: back.after, detail: `${why}; previous program back${up ? ", link up" : ", but its link is not up either"}` }
    }

    // Frees the board's socket, waits for its wssk session, runs the deploy.
    // `since`: when the session began; a link that comes up later is the new program's
    // (the deploy stops the old one, and the link is kept off until then).
    private async runOnBoard(id: string, run: DeployRun): Promise<RunResult & { since: number }> {
        // A session the board's own link cut short before anything was written
        // (its program took the one socket back) is tried again.
        const end = performance.now() + this.sessionWithin
        for (;;) {
            const r = await this.runOnce(id, run)
            if (r.ok || r.written || !/^session ended/.test(r.error ?? "") || performance.now() > end) return r
            this.log.info({ board: id, reason: r.error }, "OTA session lost before the deploy began: trying again")
            run = run.fresh()
        }
    }

    private async runOnce(id: string, run: DeployRun): Promise<RunResult & { since: number }> {
        this.pending.add(id)
        const session = this.gateway.want(id)
        this.server.connection(id)?.disconnect("OTA deploy pending")
        let timer: NodeJS.Timeout | undefined = undefined
        try {
            const s = await Promise.race([
                session,
                new Promise<never>((_, reject) => {
                    timer = setTimeout(() => reject(new Error(`board did not open an OTA session within ${this.sessionWithin} ms`)), this.sessionWithin)
                }),
            ])
            this.gateway.unwant(id, "deploy running")
            const since = performance.now()
            return { ...(await s.execute(run, this.deployWithin)), since }
        } catch (e) {
            return { ok: false, written: false, error: (e as Error).message, since: performance.now() }
        } finally {
            if (timer) clearTimeout(timer)
            this.pending.delete(id)
            this.gateway.unwant(id, "deploy over")
            session.catch(() => {})
        }
    }

    // Resolves true once the board's link has come up after `since`, false after linkUpWithin.
    private linkUp(id: string, since: number): Promise<boolean> {
        if ((this.lastConnect.get(id) ?? -1) > since) return Promise.resolve(true)
        return new Promise((resolve) => {
            const onConnect = (conn: Connection) => {
                if (conn.id !== id || !this.isBoardLink(conn)) return
                clearTimeout(t)
                this.server.off("connect", onConnect)
                resolve(true)
            }
            const t = setTimeout(() => {
                this.server.off("connect", onConnect)
                resolve(false)
            }, this.linkUpWithin)
            this.server.on("connect", onConnect)
        })
    }
}
