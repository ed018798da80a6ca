// Delivery state: what one link must not forget across a restart of its
// process (docs/protocol.md, "Delivery state across restarts"). The core
// says what to record and when; the shell (src/server/state.ts) keeps it,
// in memory or on disk.
//
// The core calls a LinkStore as it goes; the shell makes every call before
// it durable (commit) before it writes anything to the socket. So a record
// is always on disk before the ACK or the line it stands for leaves.

// The link's own record: one per id, rewritten as it changes.
export interface LinkRecord {
    epoch: string // this end's epoch: its id sequence lives on across restarts
    peerEpoch: string // the peer's epoch, "" while unknown
    seen: number[] // 32 bytes: the ids the application took or whose ACK left unread (dedup.ts)
    newest: number // SeenIds' newest byte
    nextSeq: number // the sender's next sequence number: no id is used twice
    received: number // counters (LinkStats) carried across restarts
    duplicates: number
    resent: number
}

// A qos line written by the application and not yet ACKed.
export interface OwedLine {
    key: number // its place in write order
    seq: number // its sequence number once it had one (sent), -1 before
    wait: boolean
    payload: Buffer
}

// A received line whose ACK left before the application took it (the
// application did not read for ackDelay ms, or ackDelay is 0).
export interface KeptLine {
    key: number // its place in arrival order
    id: number
    payload: Buffer
}

// What a store gives back for one id at start.
export interface SavedLink {
    link: LinkRecord
    owed: OwedLine[] // in key order
    kept: KeptLine[] // in key order
}

export interface LinkStore {
    saveLink(r: LinkRecord): void
    putOwed(o: OwedLine): void
    dropOwed(key: number): void
    putKept(k: KeptLine): void
    dropKept(key: number): void
}

// The records of a Link's delivery state (records.ts, useStore()), told
// what changes as the Link goes; a board never records, so its image holds
// none of it. Each call comes before the line or ACK it stands for leaves.
export interface Recorder {
    // A qos line written (key -1: it gets one now), or given its sequence number.
    owe(o: OwedLine): void
    // An owed line was ACKed or refused.
    paid(key: number): void
    // A line whose ACK leaves before the application took it: recorded
    // (payload and all) and as seen. Returns its key.
    keep(id: number, payload: string): number
    // A kept line was taken (or settled).
    unkeep(key: number): void
    // The application took (or a relay settled) a line whose ACK is still owed.
    took(id: number): void
    // The peer restarted: its ids are new again.
    forget(): void
    // Lines are about to be sent: a new sequence number is recorded first.
    sending(): void
}

// A Link given a store by useStore(): its records ride on the Link object,
// for what only Node calls (relay.ts's settle(), records.ts's untake()).
export interface Recorded {
    rec?: Recorder
}
