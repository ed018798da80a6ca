// The server's key file (`--keys FILE`): one client id a line,
//
//   <id> <key> [<next key>] [encrypt]    a keyed id: one key, or two during a rotation
//   <id> revoked                         refused, whatever it sends
//   <id> open                            no key: re-opens an id a reload revoked
//
// where a key is 64 hex digits (32 bytes, e.g. from `devs-iot keygen`) and
// <id> is everything before the fields (so an id may contain spaces, but no
// word of 64 hex digits). `encrypt`: the id must encrypt (both directions).
// Blank lines and lines starting with "#" are ignored. A bad line is an error
// naming file:line that never shows the line itself: it may hold a key.
import { readFileSync, statSync } from "node:fs"
import { KEY_BYTES, checkClientId } from "../shared/index.js"

export class KeyFileError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "KeyFileError"
    }
}

// What the key file says of one keyed id.
export interface KeySpec {
    keys: Buffer[] // one, or two during a rotation (either authenticates)
    encrypt: boolean // the id must encrypt its messages, and gets encrypted ones
}

export interface KeyFile {
    keys: Map<string, KeySpec>
    revoked: string[] // `<id> revoked`
    open: string[] // `<id> open`
}

const KEY_RE = new RegExp(`^[0-9a-fA-F]{${2 * KEY_BYTES}}$`)
const FORMAT = `"<id> <key> [<next key>] [encrypt]", "<id> revoked" or "<id> open" (a key: ${2 * KEY_BYTES} hex digits)`

// The lengths of a line's words: enough to see what is wrong, nothing of a key.
function shape(words: string[]): string {
    if (words.length === 0) return "nothing (the file is empty or all comments)"
    return `${words.length} word${words.length === 1 ? "" : "s"} of ${words.map((w) => w.length).join(", ")} characters`
}

export function parseKeyFile(text: string, file: string): KeyFile {
    return parseLines(text, file, "")
}

// `oneKey`, when not "": the flag of a file that holds one key an id and
// nothing else (--ota-keys); a line that says more is refused, not ignored.
function parseLines(text: string, file: string, oneKey: string): KeyFile {
    const out: KeyFile = { keys: new Map(), revoked: [], open: [] }
    const seen = new Set<string>()
    const lines = text.split("\n")
    for (let i = 0; i < lines.length; i++) {
        const where = `${file}:${i + 1}`
        const line = lines[i]!.replace(/\r$/, "").trim()
        if (line === "" || line.startsWith("#")) continue
        const words = line.split(/[ \t]+/)
        // Where each word starts, so an id keeps its inner spacing.
        const starts: number[] = []
        for (const m of line.matchAll(/[^ \t]+/g)) starts.push(m.index!)
        let id: string
        const last = words[words.length - 1]!
        if (words.length >= 2 && (last === "revoked" || last === "open") && !words.some((w) => KEY_RE.test(w))) {
            id = line.slice(0, starts[words.length - 1]).trimEnd()
            if (oneKey !== "") throw new KeyFileError(`${where}: id ${JSON.stringify(id)}: '${last}' lines are not supported in ${oneKey}: a board without a line there has no key`)
            if (last === "revoked") out.revoked.push(id)
            else out.open.push(id)
        } else {
            // The fields start at the first key (an id has no word of 64 hex
            // digits: a line of keys alone must not name an id after a key).
            const first = words.findIndex((w) => KEY_RE.test(w))
            const at = first > 0 && words.slice(first + 1).every((w) => KEY_RE.test(w) || w === "encrypt") ? first : -1
            if (at < 0) {
                const k = words.findIndex((w) => KEY_RE.test(w))
                const before = k > 0 ? line.slice(0, starts[k]).trimEnd() : words.length >= 2 ? line.slice(0, starts[words.length - 1]).trimEnd() : ""
                const named = before !== "" && !/[0-9a-fA-F]{16}/.test(before) ? `id ${JSON.stringify(before)}: ` : ""
                if (k < 0 && named !== "")
                    throw new KeyFileError(`${where}: the key of ${JSON.stringify(before)} must be ${2 * KEY_BYTES} hex digits (${KEY_BYTES} bytes), got ${words[words.length - 1]!.length} characters`)
                throw new KeyFileError(
                    `${where}: ${named}expected ${FORMAT}; got ${shape(words)}` +
                        (k > 0 ? " (after the key, a word that is neither a key nor 'encrypt')" : k === 0 ? " (no id before the key)" : " (no word is a key)") +
                        "; the line is not shown, it may hold a key"
                )
            }
            id = line.slice(0, starts[at]).trimEnd()
            const fields = words.slice(at)
            const keys = fields.filter((w) => KEY_RE.test(w)).map((w) => Buffer.from(w, "hex"))
            const flags = fields.filter((w) => w === "encrypt")
            if (keys.length > 2) throw new KeyFileError(`${where}: id ${JSON.stringify(id)} has ${keys.length} keys: at most two (the current one and the next, during a rotation)`)
            if (flags.length > 1) throw new KeyFileError(`${where}: id ${JSON.stringify(id)}: 'encrypt' given twice`)
            if (keys.length === 2 && keys[0]!.equals(keys[1]!)) throw new KeyFileError(`${where}: id ${JSON.stringify(id)}: its two keys are the same`)
            if (oneKey !== "" && keys.length > 1) throw new KeyFileError(`${where}: id ${JSON.stringify(id)}: a second key (a rotation) is not supported in ${oneKey}: one key an id`)
            if (oneKey !== "" && flags.length > 0) throw new KeyFileError(`${where}: id ${JSON.stringify(id)}: 'encrypt' is not supported in ${oneKey}: one key an id`)
            out.keys.set(id, { keys, encrypt: flags.length === 1 })
        }
        const p = checkClientId(id)
        if (p !== "") throw new KeyFileError(`${where}: id ${JSON.stringify(id)}: ${p}`)
        if (seen.has(id)) throw new KeyFileError(`${where}: id ${JSON.stringify(id)} is listed twice`)
        seen.add(id)
    }
    return out
}

// The keyed ids only (each id's keys), for callers of the one-key format.
export function parseKeys(text: string, file: string): Map<string, Buffer[]> {
    const f = parseKeyFile(text, file)
    return new Map([...f.keys].map(([id, s]) => [id, s.keys]))
}

export function loadKeyFile(file: string): KeyFile {
    return parseKeyFile(readSecret(file, "key file"), file)
}

/** @internal The `--ota-keys` file: the key file's format, one key an id and
 * nothing else (`flag` names it in the errors). */
export function loadOneKeyFile(file: string, flag: string): Map<string, Buffer> {
    const f = parseLines(readSecret(file, "key file"), file, flag)
    return new Map([...f.keys].map(([id, spec]) => [id, spec.keys[0]!]))
}

// Reads a file that holds keys; the error names the file and the cause only.
export function readSecret(file: string, what: string): string {
    try {
        return readFileSync(file, "utf8")
    } catch (e) {
        throw new KeyFileError(`${file}: cannot read the ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
    }
}

// A warning when a file of keys can be read or written by others than its
// owner (mode & 0o077), or "" (also where modes mean nothing, e.g. Windows).
export function modeWarning(file: string, what: string): string {
    if (process.platform === "win32") return ""
    let mode: number
    try {
        mode = statSync(file).mode & 0o777
    } catch {
        return ""
    }
    if ((mode & 0o077) === 0) return ""
    return `${what} ${file} is accessible to other users (mode ${mode.toString(8).padStart(4, "0")}): anyone who can read it can impersonate these clients; run chmod 600 ${file}`
}

// A client's key file (`devs-iot client --key-file FILE`): one key of 64 hex
// digits on a line of its own; blank lines and "#" comments are ignored.
export function parseClientKey(text: string, file: string): Buffer {
    const words: string[] = []
    for (const raw of text.split("\n")) {
        const l = raw.replace(/\r$/, "").trim()
        if (l === "" || l.startsWith("#")) continue
        words.push(...l.split(/[ \t]+/))
    }
    if (words.length !== 1 || !KEY_RE.test(words[0]!))
        throw new KeyFileError(`${file}: expected one key of ${2 * KEY_BYTES} hex digits; got ${shape(words)}; the file is not shown, it may hold a key`)
    return Buffer.from(words[0]!, "hex")
}

// A key given as hex (64 digits) or as 32 bytes.
export function keyFrom(v: unknown, what: string): Buffer {
    if (Buffer.isBuffer(v) && v.length === KEY_BYTES) return Buffer.from(v)
    if (typeof v === "string" && KEY_RE.test(v)) return Buffer.from(v, "hex")
    throw new KeyFileError(`${what} must be ${2 * KEY_BYTES} hex digits or a ${KEY_BYTES}-byte Buffer`)
}
