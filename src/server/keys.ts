// The server's key file (`--keys FILE`): one client per line,
//
//   <id> <key>
//
// where <key> is 64 hex digits (32 bytes, e.g. from `devs-iot keygen`) and
// <id> is everything before the last run of spaces or tabs (so an id may
// contain spaces). Blank lines and lines starting with "#" are ignored. A bad
// line is an error naming file:line; an id listed twice is an error too.
import { readFileSync } from "node:fs"
import { KEY_BYTES, checkClientId } from "../shared/index.js"

export class KeyFileError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "KeyFileError"
    }
}

export function parseKeys(text: string, file: string): Map<string, Buffer> {
    const keys = new Map<string, Buffer>()
    const lines = text.split("\n")
    for (let i = 0; i < lines.length; i++) {
        const where = `${file}:${i + 1}`
        const line = lines[i]!.replace(/\r$/, "").trim()
        if (line === "" || line.startsWith("#")) continue
        const m = /^(.*\S)[ \t]+(\S+)$/.exec(line)
        if (!m) throw new KeyFileError(`${where}: expected "<id> <key>" (the key: ${2 * KEY_BYTES} hex digits), got ${JSON.stringify(line.slice(0, 80))}`)
        const id = m[1]!
        const hex = m[2]!
        if (!new RegExp(`^[0-9a-fA-F]{${2 * KEY_BYTES}}$`).test(hex))
            throw new KeyFileError(`${where}: the key of ${JSON.stringify(id)} must be ${2 * KEY_BYTES} hex digits (${KEY_BYTES} bytes), got ${hex.length} characters`)
        const p = checkClientId(id)
        if (p !== "") throw new KeyFileError(`${where}: id ${JSON.stringify(id)}: ${p}`)
        if (keys.has(id)) throw new KeyFileError(`${where}: id ${JSON.stringify(id)} is listed twice`)
        keys.set(id, Buffer.from(hex, "hex"))
    }
    return keys
}

export function loadKeys(file: string): Map<string, Buffer> {
    let text: string
    try {
        text = readFileSync(file, "utf8")
    } catch (e) {
        throw new KeyFileError(`${file}: cannot read the key file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
    }
    return parseKeys(text, file)
}

// A key given as hex (64 digits) or as 32 bytes.
export function keyFrom(v: unknown, what: string): Buffer {
    if (Buffer.isBuffer(v) && v.length === KEY_BYTES) return Buffer.from(v)
    if (typeof v === "string" && new RegExp(`^[0-9a-fA-F]{${2 * KEY_BYTES}}$`).test(v)) return Buffer.from(v, "hex")
    throw new KeyFileError(`${what} must be ${2 * KEY_BYTES} hex digits or a ${KEY_BYTES}-byte Buffer`)
}
