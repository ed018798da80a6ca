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
