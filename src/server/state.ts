// Where the delivery state (shared/store.ts) lives: in memory (the default:
// nothing survives the process), or on disk in a state folder (--state DIR),
// an LMDB environment. The core records as it goes; commit() makes every
// record so far durable, and the LinkDriver calls it before any write to a
// socket, so nothing leaves that the state does not hold (docs/protocol.md,
// "Delivery state across restarts").
//
// Two strengths on disk: crash-safe (default: LMDB commits without fsync; the
// data is in the kernel's page cache once commit returns, which a killed
// process cannot lose) and power-loss-safe (sync: each commit fsyncs, one
// commit per turn of the driver, so lines that arrive together share it).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, accessSync, constants, openSync, readSync, closeSync, realpathSync, fstatSync, statSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { spawnSync } from "node:child_process"
import { ftruncateSync, fdatasyncSync, writeSync } from "node:fs"
import type { KeptLine, LinkRecord, LinkStore, OwedLine, SavedLink } from "../shared/index.js"
import type { Logger } from "./log.js"
import { LogBudget } from "./admission.js"
import { clock } from "./clock.js"
import { decodeJournal, FrameWriter, JournalError, J_DROP_KEPT, J_DROP_OWED, J_KEPT, J_LINK, J_OWED, J_REMOVE, type JRecord } from "./journal.js"

export interface StateStore {
    readonly where: string // "memory" or the folder
    // Survives the process (on disk): a line recorded as taken may be ACKed
    // before the application's code has run on it.
    readonly durable: boolean
    // What an earlier life left for `id`, or undefined (a new id).
    load(id: string): SavedLink | undefined
    // The store the core of `id` records into.
    forId(id: string): LinkStore
    // Forgets `id` (the server evicted it).
    remove(id: string): void
    // The ids it holds records of, least recently seen first (across
    // restarts), whether it holds records of `id`, and that `id` was seen
    // now (its link went up or down). Optional: a store of one's own that
    // leaves them out keeps ids the server does not count toward maxClients.
    ids?(): string[]
    has?(id: string): boolean
    seen?(id: string): void
    // Makes every record so far durable. Throws StateError when the disk
    // refuses (full, gone): the caller must not send what depends on it.
    commit(): void
    // Writes the disk refused so far (journal or database), and why the
    // last one failed while the disk still refuses (undefined once a write
    // holds again): for the metrics. Optional: a store of one's own may leave them out.
    readonly writeFailures?: number
    readonly writeError?: string | undefined
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

// When each id was last seen, for ids(): the wall clock in ms, but never
// back: a clock set back (or a step forward undone) gives each later id one
// ms more than the last, so the order of what was seen holds.
class SeenClock {
    private last = 0
    after(t: number): void {
        if (t > this.last) this.last = t
    }
    now(): number {
        return (this.last = Math.max(Date.now(), this.last + 1))
    }
}

// Ids by when they were last seen, then by id.
function bySeen(seen: Map<string, number>): string[] {
    return [...seen].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[0])
}

type Key = [string, number] | [string, number, number]

// Records per id in Maps: a Server or Client made again in the same process
// picks up where the last one stopped (and the tests check the core's side
// of restarts with it, without a disk).
export class MemoryState implements StateStore {
    readonly where = "memory"
    readonly durable = false
    readonly writeFailures = 0
    readonly writeError = undefined
    private entries = new Map<string, { link?: LinkRecord; at: number; owed: Map<number, OwedLine>; kept: Map<number, KeptLine> }>()
    private clock = new SeenClock()

    load(id: string): SavedLink | undefined {
        const e = this.entries.get(id)
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
            dropOwed: (k) => void this.entries.get(id)?.owed.delete(k),
            putKept: (k) => void this.entry(id).kept.set(k.key, k),
            dropKept: (k) => void this.entries.get(id)?.kept.delete(k),
        }
    }

    remove(id: string): void {
        this.entries.delete(id)
    }

    ids(): string[] {
        const seen = new Map<string, number>()
        for (const [id, e] of this.entries) if (e.link !== undefined) seen.set(id, e.at)
        return bySeen(seen)
    }

    has(id: string): boolean {
        return this.entries.get(id)?.link !== undefined
    }

    seen(id: string): void {
        const e = this.entries.get(id)
        if (e !== undefined) e.at = this.clock.now()
    }

    commit(): void {}

    close(): void {}

    private entry(id: string) {
        let e = this.entries.get(id)
        if (!e) this.entries.set(id, (e = { at: this.clock.now(), owed: new Map(), kept: new Map() }))
        return e
    }
}

// The marker that says a folder is a devs-iot state folder, and its format.
const MARKER = "devs-iot-state.json"
const JOURNAL = "journal.bin"
const OWNER = "owner.pid" // the process using the folder
const OWNER_ID = "owner.id" // which process that pid was: its pid, boot and start time (Linux)
const OWNER_LOCK = "owner.lock" // held while owner.pid is read and written
const LOCK_WAIT_MS = 5000 // how long a start waits for another one's owner.lock
const LOCK_STALE_MS = 10000 // an owner.lock this old was left by a killed process
// Where LMDB's first meta page holds its magic number (lmdb 3.x, 64-bit).
const LMDB_MAGIC_AT = 24
const LMDB_MAGIC = 0xbeefc0de
// And, in each meta page (pages 0 and 1), the page size, the last page used and the transaction.
const META_PSIZE_AT = 48
const META_LAST_PG_AT = 144
const META_TXNID_AT = 152
const FORMAT = 1

export interface DiskStateOptions {
    sync?: boolean // fsync each commit (power-loss-safe); default false (crash-safe)
    // Whose state this is: recorded in a new folder's marker, and a folder
    // recorded for the other side is refused. The records are per id, and a
    // client whose id is one of the server's boards would take the server's
    // record for that board as its own (and send the lines owed to the board).
    side?: "server" | "client"
    mapSize?: number // bytes the database may grow to (default 1 GiB)
    logger?: Logger // where a torn last journal frame dropped at start is told (default: nowhere)
}

type LmdbDb = {
    get(key: Key): unknown
    put(key: Key, value: unknown): unknown
    remove(key: Key): unknown
    transactionSync<T>(fn: () => T): T
    getRange(o: { start: unknown; end: unknown }): Iterable<{ key: Key; value: unknown }>
    close(): Promise<void>
}

// Journal records applied to LMDB at most this many at a time, or this
// often, or when the journal reaches this size.
const CHECKPOINT_RECORDS = 16384
const CHECKPOINT_MS = 1000
const CHECKPOINT_BYTES = 8 * 1024 * 1024
// Past this the journal may not grow while checkpoints fail: commits fail.
const JOURNAL_LIMIT = 256 * 1024 * 1024

// The state folder (--state DIR): an LMDB environment (data.mdb, lock.mdb),
// the journal (journal.bin: commits not yet in LMDB, see journal.ts) and a
// marker. A folder that is neither empty nor a state folder, a marker of
// another format, a database or journal that cannot be opened or read is an
// error naming the file: never a silent empty start.
export class DiskState implements StateStore {
    readonly where: string
    readonly durable = true
    readonly sync: boolean
    private db: LmdbDb
    private frame = new FrameWriter() // recorded since the last commit, encoded
    private links = new Map<string, LinkRecord>() // latest record per id in this frame (encoded at commit)
    private keys = new Map<string, Buffer>() // each id's UTF-8, made once
    private unflushed = new Map<string, Unflushed>() // recorded since the last checkpoint, per id
    private unflushedRecords = 0
    private fd: number
    private journalBytes = 0 // where the last whole frame ends
    private torn = false // bytes of a failed write may follow journalBytes
    private journalFile: string
    private timer: NodeJS.Timeout
    private checkpointError: Error | undefined
    private journalError: Error | undefined
    private failures = 0
    private refusing = false // the disk refuses writes (writeError), as last logged
    private logger: Logger | undefined
    private transitions = new LogBudget(2, 10000) // lines about refusing and holding again
    private closed = false
    // Each id with a link record (in LMDB or on its way) and when it was last
    // seen; stored in its link record as `at` by checkpoints (`seenDirty`:
    // not yet). Records of older versions have none: they get one at start.
    private seenAt = new Map<string, number>()
    private seenDirty = new Set<string>()
    private clock = new SeenClock()

    private constructor(dir: string, db: LmdbDb, sync: boolean, fd: number, logger: Logger | undefined) {
        this.logger = logger
        this.where = dir
        this.db = db
        this.sync = sync
        this.fd = fd
        this.journalFile = join(dir, JOURNAL)
        this.timer = setInterval(() => {
            try {
                this.commit() // what waits for no output (drops) is committed here at the latest
                this.checkpoint()
            } catch {
                // Counted in writeFailures; the journal keeps the records,
                // and commit() fails past JOURNAL_LIMIT.
            }
        }, CHECKPOINT_MS)
        this.timer.unref()
    }

    static async open(dir: string, opts: DiskStateOptions = {}): Promise<DiskState> {
        if (!existsSync(dir)) {
            try {
                mkdirSync(dir, { recursive: true })
            } catch (e) {
                throw new StateError(`state folder ${dir}: cannot create it: ${(e as Error).message}`)
            }
        }
        // A folder of something else is refused before anything is written in it.
        // One listing: the marker is the first file a first start writes, so
        // a second listing could see the files of a process starting beside
        // this one, and not its marker, and call its folder foreign.
        const before = stateEntries(dir)
        if (!before.includes(MARKER) && before.length > 0)
            throw new StateError(`state folder ${dir}: not empty and has no ${MARKER}: not a devs-iot state folder (give an empty or new folder)`)
        await takeFolder(dir, opts.logger)
        let fresh = false
        try {
            let entries = stateEntries(dir)
            // A first start cut short (a kill, or a failure older versions did
            // not clean up) leaves the marker and no journal: the journal is
            // made right after the database opens and is never removed, so
            // nothing was ever recorded here. Started again as a new folder.
            if (entries.includes(MARKER) && !entries.includes("data.mdb") && !entries.includes(JOURNAL)) {
                for (const f of CREATED) if (f !== OWNER && f !== OWNER_ID) rmOrFail(join(dir, f))
                opts.logger?.warn({ state: dir }, `state folder ${dir}: an earlier first start was cut short (a marker, no database, no journal): started as a new folder`)
                entries = stateEntries(dir)
            }
            fresh = entries.length === 0
            return await DiskState.openIn(dir, entries, opts)
        } catch (e) {
            // A first start that fails (a full disk, no write permission)
            // leaves the folder empty, so the next start is a first start too.
            if (fresh) for (const f of CREATED) rmSync(join(dir, f), { force: true })
            letGo(dir)
            throw e
        }
    }

    private static async openIn(dir: string, entries: string[], opts: DiskStateOptions): Promise<DiskState> {
        const marker = join(dir, MARKER)
        const data = join(dir, "data.mdb")
        if (entries.includes(MARKER)) {
            let m: { format?: unknown; side?: unknown }
            try {
                m = JSON.parse(readFileSync(marker, "utf8"))
            } catch (e) {
                throw new StateError(`state file ${marker}: unreadable or not JSON: ${(e as Error).message}`)
            }
            if (m?.format !== FORMAT) throw new StateError(`state file ${marker}: format ${JSON.stringify(m?.format)}, this version reads format ${FORMAT}`)
            if (opts.side !== undefined && m.side !== undefined && m.side !== opts.side)
                throw new StateError(`state folder ${dir}: holds the delivery state of a ${String(m.side)} (${marker}), not of a ${opts.side}: give each process its own folder`)
            if (!entries.includes("data.mdb")) throw new StateError(`state file ${data}: missing (the marker says this folder holds delivery state)`)
            try {
                accessSync(data, constants.R_OK | constants.W_OK)
            } catch (e) {
                throw new StateError(`state file ${data}: cannot read and write it: ${(e as Error).message}`)
            }
            // LMDB trusts its file: a foreign or truncated one must not reach it
            // (it would start empty, or crash on a garbage page map).
            const head = Buffer.alloc(32)
            let n = 0
            try {
                const fd = openSync(data, "r")
                try {
                    n = readSync(fd, head, 0, 32, 0)
                } finally {
                    closeSync(fd)
                }
            } catch (e) {
                throw new StateError(`state file ${data}: cannot read it: ${(e as Error).message}`)
            }
            if (n < 32 || head.readUInt32LE(LMDB_MAGIC_AT) !== LMDB_MAGIC) throw new StateError(`state file ${data}: not an LMDB database (damaged or truncated): restore it from a backup, or move the folder away to start empty`)
            checkLength(data)
        } else writeOrFail(marker, JSON.stringify({ format: FORMAT, what: "devs-iot delivery state (LMDB)", side: opts.side }) + "\n")
        // LMDB ends the process (a segfault, no message) on a lock file it
        // cannot write. (One it cannot make is a folder it cannot write in:
        // takeFolder, which made owner.lock there, would have said so.)
        const lock = join(dir, "lock.mdb")
        try {
            if (existsSync(lock)) accessSync(lock, constants.R_OK | constants.W_OK)
        } catch (e) {
            throw new StateError(`state file ${lock}: cannot read and write it: ${(e as Error).message}`)
        }
        let lmdb: { open: (o: Record<string, unknown>) => LmdbDb }
        try {
            lmdb = (await import("lmdb")) as unknown as typeof lmdb
        } catch (e) {
            throw new StateError(`--state needs the lmdb package: ${(e as Error).message}`)
        }
        let db: LmdbDb
        try {
            // Written only by checkpoints: the journal already holds each commit.
            db = lmdb.open({ path: dir, compression: false, noSync: opts.sync !== true, mapSize: opts.mapSize ?? 2 ** 30, cache: false })
        } catch (e) {
            throw new StateError(`state file ${data}: cannot open it: ${(e as Error).message}`)
        }
        const journal = join(dir, JOURNAL)
        let fd: number
        let recs: JRecord[]
        let bytes: number
        let dropped: number
        try {
            fd = openSync(journal, "a+")
            const d = decodeJournal(readFileSync(journal))
            recs = d.recs
            bytes = d.bytes
            dropped = d.dropped
        } catch (e) {
            void db.close()
            throw new StateError(`state file ${journal}: ${e instanceof JournalError ? "damaged" : "unreadable"}: ${(e as Error).message}`)
        }
        // A torn last frame is cut off: the next frame must start where the
        // last whole one ends, or the torn one's length would swallow it.
        if (dropped > 0) {
            try {
                ftruncateSync(fd, bytes)
                if (opts.sync === true) fdatasyncSync(fd)
            } catch (e) {
                closeSync(fd)
                void db.close()
                throw new StateError(`state file ${journal}: cannot cut its torn last frame: ${(e as Error).message}`)
            }
            opts.logger?.warn(
                { state: journal, at: bytes, dropped },
                `state file ${journal}: dropped ${dropped} bytes past its last whole frame (byte ${bytes}): a last write cut short by a kill or a power cut`,
            )
        }
        const s = new DiskState(dir, db, opts.sync === true, fd, opts.logger)
        s.journalBytes = bytes
        try {
            s.check(data)
            // Commits of the last life not yet in LMDB: applied, then the journal starts empty.
            for (const r of recs) s.replay(r)
        } catch (e) {
            s.shut()
            throw e
        }
        // A disk that refuses the checkpoint (full) does not keep the
        // server from starting: the journal holds the records, as when a
        // checkpoint fails while it runs, and the next ones try again.
        try {
            s.checkpoint()
        } catch {
            // Logged (tell) and counted.
        }
        return s
    }

    // Read from LMDB: an id with records not yet there is checkpointed
    // first. Others are read as they are, so a disk that refuses the
    // checkpoint (full) keeps only the ids it holds records of from coming up.
    load(id: string): SavedLink | undefined {
        if (this.unflushed.has(id)) {
            this.commit()
            this.checkpoint()
        }
        const stored = this.db.get([id, LINK]) as (LinkRecord & { at?: number }) | undefined
        if (stored === undefined) return undefined
        const link: LinkRecord & { at?: number } = { ...stored }
        delete link.at
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

    // The id's key is made on its first record: a stranger's id (its link
    // never up, its Connection dropped with its socket) records nothing,
    // and leaves nothing in `keys` either, however many come over weeks.
    forId(id: string): LinkStore {
        let key: Buffer | undefined
        const k = () => (key ??= this.keyOf(id))
        const f = this.frame
        return {
            saveLink: (r) => {
                if (!this.seenAt.has(id)) this.seenAt.set(id, this.clock.now())
                this.links.set(id, r)
                this.pending(id).link = r
            },
            putOwed: (o) => {
                f.owed(k(), o)
                putOwed(this.pending(id), o)
            },
            dropOwed: (n) => {
                f.drop(J_DROP_OWED, k(), n)
                dropOwed(this.pending(id), n)
            },
            putKept: (x) => {
                f.kept(k(), x)
                putKept(this.pending(id), x)
            },
            dropKept: (n) => {
                f.drop(J_DROP_KEPT, k(), n)
                dropKept(this.pending(id), n)
            },
        }
    }

    remove(id: string): void {
        this.links.delete(id)
        this.frame.remove(this.keyOf(id))
        this.keys.delete(id)
        this.seenAt.delete(id)
        this.seenDirty.delete(id)
        this.unflushed.set(id, new Unflushed(true))
        this.unflushedRecords++
    }

    ids(): string[] {
        return bySeen(this.seenAt)
    }

    has(id: string): boolean {
        return this.seenAt.has(id)
    }

    // Not journaled: a kill loses at most the last second's, which only
    // orders ids that were all seen in that second.
    seen(id: string): void {
        if (!this.seenAt.has(id)) return
        this.seenAt.set(id, this.clock.now())
        this.seenDirty.add(id)
    }

    // One line when the disk starts refusing writes and one when they hold
    // again (each link's failure is logged by the driver, budgeted too):
    // at most two every 10 s, however often a nearly full disk flips.
    private tell(): void {
        const refusing = this.writeError !== undefined
        if (refusing === this.refusing) return
        this.refusing = refusing
        const pass = this.transitions.pass(refusing ? "refusing" : "holding", clock())
        if (pass === undefined || this.logger === undefined) return
        if (refusing)
            this.logger.error({ state: this.where, code: "ESTATE", ...pass }, `state folder ${this.where}: the disk refuses writes (${this.writeError}): no line that needs a record is ACKed or sent until it takes them again`)
        else this.logger.info({ state: this.where, refused: this.failures, ...pass }, `state folder ${this.where}: writes hold again (${this.failures} refused since start)`)
    }

    get writeFailures(): number {
        return this.failures
    }

    get writeError(): string | undefined {
        return (this.journalError ?? this.checkpointError)?.message
    }

    // One journal frame, one write(2), for everything recorded since the
    // last commit (and an fdatasync with sync). On failure the frame stays,
    // so the next commit writes it again, nothing that needs it goes out
    // meanwhile, and the journal is cut back to its last whole frame (by the
    // next commit, before it writes, if the cut fails too).
    commit(): void {
        if (this.frame.isEmpty() && this.links.size === 0) return
        if (this.closed) throw new StateError(`state folder ${this.where}: closed`)
        if (this.journalBytes > JOURNAL_LIMIT) {
            this.failures++
            throw new StateError(`state file ${join(this.where, "data.mdb")}: write failed: ${this.checkpointError?.message ?? "checkpoints fall behind"} (journal over ${JOURNAL_LIMIT} bytes)`)
        }
        if (this.links.size > 0) {
            this.links.forEach((link, id) => this.frame.link(this.keyOf(id), link))
            this.links.clear()
        }
        const frame = this.frame.buffer()
        const length = this.frame.length()
        try {
            // A failed write that could not be cut back: cut it now, or fail again.
            if (this.torn) {
                ftruncateSync(this.fd, this.journalBytes)
                this.torn = false
            }
            let off = 0
            while (off < length) off += writeSync(this.fd, frame, off, length - off)
            if (this.sync) fdatasyncSync(this.fd)
        } catch (e) {
            try {
                ftruncateSync(this.fd, this.journalBytes)
            } catch {
                this.torn = true // the next commit cuts it before it writes
            }
            this.failures++
            this.journalError = new StateError(`state file ${this.journalFile}: write failed: ${(e as Error).message}`)
            this.tell()
            throw this.journalError
        }
        if (this.journalError !== undefined) {
            this.journalError = undefined
            this.tell()
        }
        this.journalBytes += length
        this.frame.reset()
        if (this.unflushedRecords >= CHECKPOINT_RECORDS || this.journalBytes >= CHECKPOINT_BYTES) {
            try {
                this.checkpoint()
            } catch {
                // Counted; the journal holds the records until one succeeds.
            }
        }
    }

    // Applies what the journal holds to LMDB in one transaction (fsynced
    // with sync), then empties the journal. Not while a frame waits for its
    // commit: LMDB holds only what the journal held first.
    private checkpoint(): void {
        if ((this.unflushed.size === 0 && this.seenDirty.size === 0) || !this.frame.isEmpty() || this.links.size > 0) return
        try {
            this.db.transactionSync(() => {
                for (const [id, u] of this.unflushed) this.apply(id, u)
                for (const id of this.seenDirty) {
                    if (this.unflushed.get(id)?.link !== undefined) continue // written with its `at` just now
                    const l = this.db.get([id, LINK]) as LinkRecord | undefined
                    if (l !== undefined) this.db.put([id, LINK], { ...l, at: this.seenAt.get(id) })
                }
            })
        } catch (e) {
            this.failures++
            this.checkpointError = new StateError(`state file ${join(this.where, "data.mdb")}: write failed: ${(e as Error).message}`)
            this.tell()
            throw this.checkpointError
        }
        this.unflushed = new Map()
        this.unflushedRecords = 0
        this.seenDirty.clear()
        if (this.checkpointError !== undefined) {
            this.checkpointError = undefined
            this.tell()
        }
        ftruncateSync(this.fd, 0)
        this.journalBytes = 0
    }

    private keyOf(id: string): Buffer {
        let k = this.keys.get(id)
        if (k === undefined) this.keys.set(id, (k = Buffer.from(id)))
        return k
    }

    private pending(id: string): Unflushed {
        this.unflushedRecords++
        let u = this.unflushed.get(id)
        if (u === undefined) this.unflushed.set(id, (u = new Unflushed(false)))
        return u
    }

    // A record of the last life's journal.
    private replay(r: JRecord): void {
        if (r.kind === J_REMOVE) {
            this.seenAt.delete(r.id)
            this.seenDirty.delete(r.id)
            this.unflushed.set(r.id, new Unflushed(true))
            return
        }
        const u = this.pending(r.id)
        switch (r.kind) {
            case J_LINK:
                if (!this.seenAt.has(r.id)) this.seenAt.set(r.id, this.clock.now())
                return void (u.link = r.link)
            case J_OWED:
                return putOwed(u, r.owed)
            case J_KEPT:
                return putKept(u, r.kept)
            case J_DROP_OWED:
                return dropOwed(u, r.key)
            case J_DROP_KEPT:
                return dropKept(u, r.key)
        }
    }

    private apply(id: string, u: Unflushed): void {
        const db = this.db
        if (u.removed) {
            const keys: Key[] = []
            for (const { key } of db.getRange({ start: [id], end: [id, KEPT + 1] })) keys.push(key)
            for (const k of keys) db.remove(k)
        }
        if (u.link !== undefined) db.put([id, LINK], { ...u.link, at: this.seenAt.get(id) ?? this.clock.now() })
        for (const [k, o] of u.owed) {
            if (o === null) db.remove([id, OWED, k])
            else db.put([id, OWED, k], o)
        }
        for (const [k, o] of u.newOwed) db.put([id, OWED, k], o)
        for (const [k, o] of u.kept) {
            if (o === null) db.remove([id, KEPT, k])
            else db.put([id, KEPT, k], o)
        }
        for (const [k, o] of u.newKept) db.put([id, KEPT, k], o)
    }

    close(): void {
        if (this.closed) return
        try {
            this.commit()
            try {
                this.checkpoint()
            } catch {
                // A full disk: the journal holds what the checkpoint could not
                // write, and the next start applies it.
            }
        } finally {
            this.shut()
        }
    }

    private shut(): void {
        this.closed = true
        clearInterval(this.timer)
        try {
            closeSync(this.fd)
        } catch {
            // already closed
        }
        void this.db.close()
        letGo(this.where)
    }

    // Reads every record once at start: a damaged database fails here, with
    // the file named, not later on a live link. Collects when each id was
    // last seen; one without (an older version's record) is seen now.
    private check(file: string): void {
        const unseen: string[] = []
        try {
            for (const { key, value } of this.db.getRange({ start: [""], end: ["\uffff"] })) {
                const problem = recordProblem(key, value)
                if (problem !== "") throw new Error(`record ${JSON.stringify(key)}: ${problem}`)
                if (key[1] !== LINK) continue
                const at = (value as { at?: unknown }).at
                if (typeof at === "number" && Number.isFinite(at)) {
                    this.seenAt.set(key[0], at)
                    this.clock.after(at)
                } else unseen.push(key[0])
            }
        } catch (e) {
            throw new StateError(`state file ${file}: unreadable: ${(e as Error).message}`)
        }
        for (const id of unseen) {
            this.seenAt.set(id, this.clock.now())
            this.seenDirty.add(id)
        }
    }
}

// What the journal holds for one id and LMDB not yet: the last record of
// each key. A line first recorded since the last checkpoint (owed: written,
// seq -1; kept: its one record) and dropped before the next never reaches
// LMDB at all. `removed`: every record of the id goes first.
class Unflushed {
    link: LinkRecord | undefined = undefined
    owed = new Map<number, OwedLine | null>() // null: removed
    kept = new Map<number, KeptLine | null>()
    newOwed = new Map<number, OwedLine>()
    newKept = new Map<number, KeptLine>()
    constructor(readonly removed: boolean) {}
}

function putOwed(u: Unflushed, o: OwedLine): void {
    if (u.newOwed.has(o.key) || (o.seq < 0 && !u.owed.has(o.key))) u.newOwed.set(o.key, o)
    else u.owed.set(o.key, o)
}

function dropOwed(u: Unflushed, key: number): void {
    if (!u.newOwed.delete(key)) u.owed.set(key, null)
}

function putKept(u: Unflushed, k: KeptLine): void {
    if (u.kept.has(k.key)) u.kept.set(k.key, k)
    else u.newKept.set(k.key, k)
}

function dropKept(u: Unflushed, key: number): void {
    if (!u.newKept.delete(key)) u.kept.set(key, null)
}

// One process per state folder: LMDB would let two share it, but each has
// its own journal and its own idea of every id's state. A folder whose owner
// died (a kill, a power cut) is taken over, also when its pid now belongs
// to another process: after a reboot the pids of boot-time services are
// handed out again, so a pid alone would keep the server from starting.
// owner.id says which process the pid was; owner.pid stays a bare pid,
// as older versions read it. The owner is read and written under
// owner.lock (a directory: making one is atomic), so two processes that
// start at the same instant cannot both find the folder free.
// A wait is logged once: a start that seems to hang says why.
async function takeFolder(dir: string, log: Logger | undefined): Promise<void> {
    if (openHere.has(realDir(dir))) throw new StateError(`state folder ${dir}: already open in this process: give each store its own folder`)
    const lock = join(dir, OWNER_LOCK)
    const until = Date.now() + LOCK_WAIT_MS
    let waiting = false
    for (;;) {
        try {
            mkdirSync(lock)
            break
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new StateError(`state folder ${dir}: cannot write in it (making ${OWNER_LOCK}: ${(e as Error).message})`)
        }
        // Held for a moment only: an old one was left by a process killed while it took the folder.
        let age = 0
        try {
            age = Date.now() - statSync(lock).mtimeMs
        } catch {
            continue // just released
        }
        if (age > LOCK_STALE_MS) rmSync(lock, { recursive: true, force: true })
        else if (Date.now() > until) throw new StateError(`state folder ${dir}: another process has been taking it for ${LOCK_WAIT_MS} ms (${lock}); try again`)
        else {
            if (!waiting) log?.info({ state: dir }, `state folder ${dir}: another process is taking it (${lock}): waiting up to ${LOCK_WAIT_MS} ms`)
            waiting = true
            await new Promise((r) => setTimeout(r, 10))
        }
    }
    try {
        if (ownerOf(dir) === "other") throw new StateError(`state folder ${dir}: in use by process ${ownerPid(dir)} (${join(dir, OWNER)}): give each process its own folder`)
        const me = processIdentity(process.pid)
        try {
            if (me === undefined) rmOrFail(join(dir, OWNER_ID))
            else writeOrFail(join(dir, OWNER_ID), `${process.pid} ${me}\n`)
            writeOrFail(join(dir, OWNER), `${process.pid}\n`)
        } catch (e) {
            // A full disk: no half-written owner left behind (the folder of a
            // first start stays empty).
            rmSync(join(dir, OWNER_ID), { force: true })
            throw e
        }
        openHere.add(realDir(dir))
    } finally {
        rmSync(lock, { recursive: true, force: true })
    }
}

// Gives the folder up, if this process holds it.
function letGo(dir: string): void {
    openHere.delete(realDir(dir))
    const owner = join(dir, OWNER)
    try {
        if (readFileSync(owner, "utf8").trim() === String(process.pid)) {
            rmSync(owner)
            rmSync(join(dir, OWNER_ID), { force: true })
        }
    } catch {
        // gone already
    }
}

// The boot and the start time of process `pid` (Linux), or undefined.
function processIdentity(pid: number): string | undefined {
    try {
        const boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim()
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
        const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] // field 22, starttime
        return start === undefined || start === "" ? undefined : `${boot} ${start}`
    } catch {
        return undefined
    }
}

// The folders open in this process (by real path): owner.pid cannot tell
// two stores of one process apart.
const openHere = new Set<string>()

function realDir(dir: string): string {
    try {
        return realpathSync(dir)
    } catch {
        return resolve(dir)
    }
}

function ownerPid(dir: string): number {
    try {
        return Number(readFileSync(join(dir, OWNER), "utf8").trim())
    } catch {
        return 0 // no owner
    }
}

// Whether a live process other than this one holds the folder.
function ownerOf(dir: string): "other" | "free" {
    const pid = ownerPid(dir)
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !alive(pid)) return "free"
    let recorded = ""
    try {
        recorded = readFileSync(join(dir, OWNER_ID), "utf8").trim()
    } catch {
        // written by an older version, or not on Linux: the pid decides
    }
    const space = recorded.indexOf(" ")
    if (space < 0 || recorded.slice(0, space) !== String(pid)) return "other"
    const now = processIdentity(pid)
    return now === undefined || now === recorded.slice(space + 1) ? "other" : "free"
}

// LMDB maps data.mdb: reading a page past the file's end ends the process
// with SIGBUS, no message, so a truncated file (a copy cut short, a restore
// from a partial backup) must not reach it. A file shorter than its newest
// meta page's last page says is read in a child process first (LMDB may
// leave freed pages at the end unwritten): if that dies, so would we.
function checkLength(data: string): void {
    let size: number
    let need: number
    try {
        const b = Buffer.alloc(2 * 160)
        const fd = openSync(data, "r")
        try {
            size = fstatSync(fd).size
            readSync(fd, b, 0, 160, 0)
            const psize = b.readUInt32LE(META_PSIZE_AT)
            if (psize < 512 || psize > 65536 || size < 2 * psize) throw new Error(`page size ${psize}`)
            readSync(fd, b, 160, 160, psize)
            const meta = (at: number) => ({ last: Number(b.readBigUInt64LE(at + META_LAST_PG_AT)), txn: b.readBigUInt64LE(at + META_TXNID_AT) })
            const [m0, m1] = [meta(0), meta(160)]
            need = ((m1.txn > m0.txn ? m1 : m0).last + 1) * psize
        } finally {
            closeSync(fd)
        }
    } catch (e) {
        throw new StateError(`state file ${data}: not an LMDB database (damaged or truncated: ${(e as Error).message}): restore it from a backup, or move the folder away to start empty`)
    }
    if (size >= need) return
    let lmdb: string
    try {
        lmdb = import.meta.resolve("lmdb")
    } catch (e) {
        throw new StateError(`--state needs the lmdb package: ${(e as Error).message}`)
    }
    const code = `const { open } = await import(${JSON.stringify(lmdb)})
const db = open({ path: ${JSON.stringify(dirname(data))}, readOnly: true, compression: false, cache: false })
for (const x of db.getRange({})) void x.value`
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { stdio: "ignore", timeout: 120000 })
    if (r.status !== 0)
        throw new StateError(`state file ${data}: truncated (${size} bytes, its pages reach byte ${need}; reading it ${r.signal ? `crashed with ${r.signal}` : "failed"}): restore it from a backup, or move the folder away to start empty`)
}

// The files a state folder holds, all made by DiskState.open; removed in
// this order, so that no other process sees a folder of something else
// (data, no marker) or takes it before it is empty.
const CREATED = ["data.mdb", "lock.mdb", JOURNAL, MARKER, OWNER_ID, OWNER]

// The entries of a state folder but those that say who holds it.
function stateEntries(dir: string): string[] {
    return readdirEntries(dir).filter((f) => f !== OWNER && f !== OWNER_ID && f !== OWNER_LOCK)
}

function readdirEntries(dir: string): string[] {
    try {
        return readdirSync(dir)
    } catch (e) {
        throw new StateError(`state folder ${dir}: cannot read it: ${(e as Error).message}`)
    }
}

function writeOrFail(file: string, text: string): void {
    try {
        writeFileSync(file, text)
    } catch (e) {
        throw new StateError(`state file ${file}: cannot write it: ${(e as Error).message}`)
    }
}

function rmOrFail(file: string): void {
    try {
        rmSync(file, { force: true })
    } catch (e) {
        throw new StateError(`state file ${file}: cannot remove it: ${(e as Error).message}`)
    }
}

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0)
        return true
    } catch (e) {
        return (e as NodeJS.ErrnoException).code === "EPERM"
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
