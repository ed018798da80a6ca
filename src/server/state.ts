// Where the delivery state (shared/store.ts) lives: in memory (the default:
// nothing survives the process), or on disk in a state folder (--state DIR),
// an LMDB environment. The core records as it goes; commit() makes every
// record so far durable, and the Endpoint calls it before any write to a
// socket, so nothing leaves that the state does not hold (docs/protocol.md,
// "Delivery state across restarts").
//
// Two strengths on disk: crash-safe (default: LMDB commits without fsync; the
// data is in the kernel's page cache once commit returns, which a killed
// process cannot lose) and power-loss-safe (sync: each commit fsyncs, one
// commit per turn of the driver, so lines that arrive together share it).
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, accessSync, constants, openSync, readSync, closeSync } from "node:fs"
import { join } from "node:path"
import type { KeptLine, LinkRecord, LinkStore, OwedLine, SavedLink } from "../shared/index.js"

export interface StateStore {
    readonly where: string // "memory" or the folder
    // What an earlier life left for `id`, or undefined (a new id).
    load(id: string): SavedLink | undefined
    // The store the core of `id` records into.
    forId(id: string): LinkStore
    // Forgets `id` (the server evicted it).
    remove(id: string): void
    // Makes every record so far durable. Throws StateError when the disk
    // refuses (full, gone): the caller must not send what depends on it.
    commit(): void
    close(): void
}

export class StateError extends Error {
    readonly code = "ESTATE"
    constructor(message: string) {
        super(message)
        this.name = "StateError"
    }
}

const LINK = 0
const OWED = 1
const KEPT = 2

type Key = [string, number] | [string, number, number]
type Op = { key: Key; value: unknown } // value undefined: remove

// Records per id in Maps: a Server or Client made again in the same process
// picks up where the last one stopped (and the tests check the core's side
// of restarts with it, without a disk).
export class MemoryState implements StateStore {
    readonly where = "memory"
    private ids = new Map<string, { link?: LinkRecord; owed: Map<number, OwedLine>; kept: Map<number, KeptLine> }>()

    load(id: string): SavedLink | undefined {
        const e = this.ids.get(id)
        if (e?.link === undefined) return undefined
        const byKey = <T extends { key: number }>(m: Map<number, T>) => [...m.values()].sort((a, b) => a.key - b.key).map((x) => ({ ...x }))
        return { link: { ...e.link, seen: [...e.link.seen] }, owed: byKey(e.owed), kept: byKey(e.kept) }
    }

    // The entry is made on the first record: an id that records nothing
    // holds nothing.
    forId(id: string): LinkStore {
        return {
            saveLink: (r) => void (this.entry(id).link = r),
            putOwed: (o) => void this.entry(id).owed.set(o.key, o),
            dropOwed: (k) => void this.ids.get(id)?.owed.delete(k),
            putKept: (k) => void this.entry(id).kept.set(k.key, k),
            dropKept: (k) => void this.ids.get(id)?.kept.delete(k),
        }
    }

    remove(id: string): void {
        this.ids.delete(id)
    }

    commit(): void {}

    close(): void {}

    private entry(id: string) {
        let e = this.ids.get(id)
        if (!e) this.ids.set(id, (e = { owed: new Map(), kept: new Map() }))
        return e
    }
}

// The marker that says a folder is a devs-iot state folder, and its format.
const MARKER = "devs-iot-state.json"
// Where LMDB's first meta page holds its magic number (lmdb 3.x, 64-bit).
const LMDB_MAGIC_AT = 24
const LMDB_MAGIC = 0xbeefc0de
const FORMAT = 1

export interface DiskStateOptions {
    sync?: boolean // fsync each commit (power-loss-safe); default false (crash-safe)
    mapSize?: number // bytes the database may grow to (default 1 GiB)
}

type LmdbDb = {
    get(key: Key): unknown
    put(key: Key, value: unknown): unknown
    remove(key: Key): unknown
    transactionSync<T>(fn: () => T): T
    getRange(o: { start: unknown; end: unknown }): Iterable<{ key: Key; value: unknown }>
    close(): Promise<void>
}

// The state folder (--state DIR): an LMDB environment (data.mdb, lock.mdb)
// and a marker. A folder that is neither empty nor a state folder, a marker
// of another format, or a database that cannot be opened or read is an error
// naming the file: never a silent empty start.
export class DiskState implements StateStore {
    readonly where: string
    readonly sync: boolean
    private db: LmdbDb
    private ops: Op[] = []
    private links = new Map<string, LinkRecord>() // latest record per id in this batch
    private closed = false

    private constructor(dir: string, db: LmdbDb, sync: boolean) {
        this.where = dir
        this.db = db
        this.sync = sync
    }

    static async open(dir: string, opts: DiskStateOptions = {}): Promise<DiskState> {
        const marker = join(dir, MARKER)
        const data = join(dir, "data.mdb")
        if (!existsSync(dir)) {
            try {
                mkdirSync(dir, { recursive: true })
            } catch (e) {
                throw new StateError(`state folder ${dir}: cannot create it: ${(e as Error).message}`)
            }
        }
        let entries: string[]
        try {
            entries = readdirSync(dir)
        } catch (e) {
            throw new StateError(`state folder ${dir}: cannot read it: ${(e as Error).message}`)
        }
        if (entries.includes(MARKER)) {
            let m: { format?: unknown }
            try {
                m = JSON.parse(readFileSync(marker, "utf8"))
            } catch (e) {
                throw new StateError(`state file ${marker}: unreadable or not JSON: ${(e as Error).message}`)
            }
            if (m?.format !== FORMAT) throw new StateError(`state file ${marker}: format ${JSON.stringify(m?.format)}, this version reads format ${FORMAT}`)
            if (!entries.includes("data.mdb")) throw new StateError(`state file ${data}: missing (the marker says this folder holds delivery state)`)
            try {
                accessSync(data, constants.R_OK | constants.W_OK)
            } catch (e) {
                throw new StateError(`state file ${data}: cannot read and write it: ${(e as Error).message}`)
            }
            // LMDB trusts its file: a foreign or truncated one must not reach it
            // (it would start empty, or crash on a garbage page map).
            const head = Buffer.alloc(32)
            const fd = openSync(data, "r")
            let n = 0
            try {
                n = readSync(fd, head, 0, 32, 0)
            } finally {
                closeSync(fd)
            }
            if (n < 32 || head.readUInt32LE(LMDB_MAGIC_AT) !== LMDB_MAGIC) throw new StateError(`state file ${data}: not an LMDB database (damaged or truncated): restore it from a backup, or move the folder away to start empty`)
        } else if (entries.length > 0) {
            throw new StateError(`state folder ${dir}: not empty and has no ${MARKER}: not a devs-iot state folder (give an empty or new folder)`)
        } else writeFileSync(marker, JSON.stringify({ format: FORMAT, what: "devs-iot delivery state (LMDB)" }) + "\n")
        let lmdb: { open: (o: Record<string, unknown>) => LmdbDb }
        try {
            lmdb = (await import("lmdb")) as unknown as typeof lmdb
        } catch (e) {
            throw new StateError(`--state needs the lmdb package: ${(e as Error).message}`)
        }
        let db: LmdbDb
        try {
            // writemap: a commit is memory writes into the shared map (in the page cache
            // at once), about half the cost of write(2) per page here.
            db = lmdb.open({ path: dir, compression: false, noSync: opts.sync !== true, useWritemap: true, mapSize: opts.mapSize ?? 2 ** 30, cache: false })
        } catch (e) {
            throw new StateError(`state file ${data}: cannot open it: ${(e as Error).message}`)
        }
        const s = new DiskState(dir, db, opts.sync === true)
        s.check(data)
        return s
    }

    load(id: string): SavedLink | undefined {
        const link = this.db.get([id, LINK]) as LinkRecord | undefined
        if (link === undefined) return undefined
        const owed: OwedLine[] = []
        for (const { value } of this.db.getRange({ start: [id, OWED], end: [id, OWED + 1] })) {
            const o = value as OwedLine
            owed.push({ ...o, payload: Buffer.from(o.payload) })
        }
        const kept: KeptLine[] = []
        for (const { value } of this.db.getRange({ start: [id, KEPT], end: [id, KEPT + 1] })) {
            const k = value as KeptLine
            kept.push({ ...k, payload: Buffer.from(k.payload) })
        }
        return { link, owed, kept }
    }

    forId(id: string): LinkStore {
        const ops = this.ops
        return {
            saveLink: (r) => void this.links.set(id, r),
            putOwed: (o) => void ops.push({ key: [id, OWED, o.key], value: o }),
            dropOwed: (k) => void ops.push({ key: [id, OWED, k], value: undefined }),
            putKept: (k) => void ops.push({ key: [id, KEPT, k.key], value: k }),
            dropKept: (k) => void ops.push({ key: [id, KEPT, k], value: undefined }),
        }
    }

    remove(id: string): void {
        this.links.delete(id)
        const keys: Key[] = []
        for (const { key } of this.db.getRange({ start: [id], end: [id, KEPT + 1] })) keys.push(key)
        for (const k of keys) this.ops.push({ key: k, value: undefined })
    }

    // One LMDB transaction for everything recorded since the last commit. On
    // failure the batch stays, so the next commit tries it again, and
    // nothing that needs it goes out meanwhile.
    commit(): void {
        if (this.ops.length === 0 && this.links.size === 0) return
        if (this.closed) throw new StateError(`state folder ${this.where}: closed`)
        const ops = this.ops
        const links = this.links
        try {
            this.db.transactionSync(() => {
                for (const op of ops) {
                    if (op.value === undefined) this.db.remove(op.key)
                    else this.db.put(op.key, op.value)
                }
                for (const [id, r] of links) this.db.put([id, LINK], r)
            })
        } catch (e) {
            throw new StateError(`state file ${join(this.where, "data.mdb")}: write failed: ${(e as Error).message}`)
        }
        ops.length = 0
        links.clear()
    }

    close(): void {
        if (this.closed) return
        try {
            this.commit()
        } finally {
            this.closed = true
            void this.db.close()
        }
    }

    // Reads every record once at start: a damaged database fails here, with
    // the file named, not later on a live link.
    private check(file: string): void {
        try {
            for (const { key, value } of this.db.getRange({ start: [""], end: ["\uffff"] })) {
                const problem = recordProblem(key, value)
                if (problem !== "") throw new Error(`record ${JSON.stringify(key)}: ${problem}`)
            }
        } catch (e) {
            void this.db.close()
            throw new StateError(`state file ${file}: unreadable: ${(e as Error).message}`)
        }
    }
}

function recordProblem(key: unknown, value: unknown): string {
    if (!Array.isArray(key) || typeof key[0] !== "string" || typeof key[1] !== "number") return "not a devs-iot key"
    const v = value as Record<string, unknown>
    if (typeof v !== "object" || v === null) return "not an object"
    if (key[1] === LINK) {
        if (typeof v["epoch"] !== "string" || typeof v["peerEpoch"] !== "string" || !Array.isArray(v["seen"]) || v["seen"].length !== 32 || typeof v["nextSeq"] !== "number")
            return "not a link record"
        return ""
    }
    if (key[1] === OWED || key[1] === KEPT) {
        if (typeof v["key"] !== "number" || !Buffer.isBuffer(v["payload"]) && !(v["payload"] instanceof Uint8Array)) return "not a line record"
        return ""
    }
    return "unknown record kind"
}

// Opens the state a --state flag names ("" or undefined: in memory).
export async function openState(dir: string | undefined, opts: DiskStateOptions = {}): Promise<StateStore> {
    if (dir === undefined || dir === "") return new MemoryState()
    return DiskState.open(dir, opts)
}
