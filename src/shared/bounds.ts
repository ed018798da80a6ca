// The server's bounds on a peer, as rows of settings (config.ts, Setting).
// Not in config.ts itself: the board's firmware imports that file, and these
// rows (server-only) would add about 1.4 KB to every board image.
import type { Setting } from "./config.js"

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
