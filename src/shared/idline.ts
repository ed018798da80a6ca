// The server's first read on a socket: the client's id line (docs/protocol.md,
// "Handshake", step 1-2). The server sends nothing until it has it. Bytes
// after the id belong to the stream that follows and go to the link, on every
// connection (the original dropped them on a reconnect).

import { HandoffFramer } from "./framer.js"

export const MAX_ID_BYTES = 256

export type IdResult = { kind: "id"; id: string; rest: Buffer[] } | { kind: "bad"; reason: string }

export class IdReader {
    private framer: HandoffFramer

    constructor(maxIdBytes: number) {
        this.framer = new HandoffFramer(maxIdBytes, false)
    }

    push(chunk: Buffer): void {
        this.framer.push(chunk)
    }

    // The id once its line is complete, "bad" for a line that cannot be one,
    // undefined while more bytes are needed.
    next(): IdResult | undefined {
        const f = this.framer.next()
        if (f === undefined) return undefined
        if (f.kind === "too-long") return { kind: "bad", reason: "id longer than " + f.limit + " bytes" }
        const reason = idProblem(f.line)
        if (reason !== "") return { kind: "bad", reason: reason }
        return { kind: "id", id: f.line.toString("utf-8"), rest: this.framer.takeRest() }
    }
}

// Why bytes cannot be a client id, or "".
export function idProblem(b: Buffer): string {
    if (b.length === 0) return "empty id"
    for (let i = 0; i < b.length; i++) if (b[i] < 32 && b[i] !== 9) return "id contains control byte " + b[i]
    return ""
}

// A client checks its own id with the server's rules.
export function checkClientId(id: string): string {
    if (typeof id !== "string") return "id must be a string"
    const b = Buffer.from(id)
    if (b.length > MAX_ID_BYTES) return "id is " + b.length + " bytes, more than " + MAX_ID_BYTES
    return idProblem(b)
}
