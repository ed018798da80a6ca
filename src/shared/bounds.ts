// The server's bounds on a peer, as rows of settings (config.ts, Setting).
// Not in config.ts itself: the board's firmware imports that file, and these
// rows (server-only) would add about 1.4 KB to every board image.
import type { Setting } from "./config.js"
import { MAX_ID_BYTES } from "./idline.js"

// Bounds on a connection before its link is up (its id line, its early
// lines, how many such connections there may be) and on the ids kept.
const ADMISSION_BOUNDS: Setting[] = [
    { name: "idTimeout", flag: "id-timeout", arg: "MS", min: 100, max: 3600000, dflt: 0, dfltText: "2 x timeout", doc: "a connection's id line must be complete this long after accept" },
    { name: "maxIdBytes", flag: "max-id-bytes", arg: "N", min: MAX_ID_BYTES, max: 65536, dflt: MAX_ID_BYTES, doc: "longest id line" },
    { name: "maxEarlyLineRate", flag: "max-early-lines", arg: "N", min: 16, max: 1000000, dflt: 64, doc: "lines per second a connection may send before its link is up" },
    { name: "maxPending", flag: "max-pending", arg: "N", min: 1, max: 1000000, dflt: 8192, doc: "unauthenticated connections (link not up yet) in all" },
    { name: "maxPendingPerSource", flag: "max-pending-per-source", arg: "N", min: 1, max: 1000000, dflt: 2048, doc: "unauthenticated connections per source address" },
    { name: "penaltyOffences", flag: "penalty-offences", arg: "N", min: 1, max: 1000000, dflt: 10, doc: "offences (bad id, no id in time, flood) that penalize an address" },
    { name: "penaltyWindow", flag: "penalty-window", arg: "MS", min: 1000, max: 86400000, dflt: 60000, doc: "the window those offences are counted in" },
    { name: "penalizedPending", flag: "penalized-pending", arg: "N", min: 1, max: 1000000, dflt: 16, doc: "unauthenticated connections a penalized address may hold" },
    { name: "maxWarningsPerSecond", flag: "max-warnings", arg: "N", min: 1, max: 1000000, dflt: 20, doc: "log lines per second of each kind (warnings, connects and outages, debug notices); the rest are counted in a summary" },
    { name: "maxClients", flag: "max-clients", arg: "N", min: 1, max: 10000000, dflt: 20000, doc: "client ids kept; beyond it a new id replaces the id down longest that is neither keyed nor in --expect, or is refused" },
]

// Bounds on one peer after its link is up, and on the ids peers create
// (README, "Hostile input"). Defaults sit far above what an honest board or
// Node client does.
export const PEER_BOUNDS: Setting[] = [
    { name: "maxUnsentBytes", flag: "max-unsent-bytes", arg: "N", min: 65536, max: 1073741824, dflt: 1048576, doc: "output a connection may hold unsent (socket buffer and link queue); past it the server stops reading that peer" },
    { name: "unsentTime", flag: "unsent-time", arg: "MS", min: 100, max: 3600000, dflt: 1000, doc: "a peer over max-unsent-bytes this long is cut" },
    { name: "lineBudget", flag: "line-budget", arg: "N", min: 16, max: 10000000, dflt: 2000, doc: "lines a second a peer may send that bring nothing new (keepalives, duplicates, stray ACKs, bad lines); past it the server reads it more slowly" },
    { name: "byteBudget", flag: "byte-budget", arg: "N", min: 1024, max: 1073741824, dflt: 1048576, doc: "bytes a second in such lines" },
    { name: "floodTime", flag: "flood-time", arg: "MS", min: 100, max: 3600000, dflt: 1000, doc: "a peer over its line or byte budget this long, without recovering, is cut" },
    { name: "newIdRate", flag: "new-id-rate", arg: "N", min: 1, max: 1000000, dflt: 100, doc: "new client ids a second one address may create" },
    { name: "newIdBurst", flag: "new-id-burst", arg: "N", min: 1, max: 10000000, dflt: 2048, doc: "new client ids one address may create at once" },
]

// Every bound of the server, admission first: `limits` of the Server, and
// one CLI flag each.
export const SERVER_BOUNDS: Setting[] = ADMISSION_BOUNDS.concat(PEER_BOUNDS)
