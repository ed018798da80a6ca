// The list of server addresses a client tries in turn (several gateways):
// "host", "host:port", or several of them separated by commas. A client
// moves to the next address when a connect fails (the board also when a
// socket opened but no link came up on it), and wraps around.
import { PORT } from "./config.js"
import { wholeRange } from "./whole.js"

export interface ServerAddress {
    host: string
    port: number
}

export interface ServerList {
    list: ServerAddress[]
    problem: string // "" when the text is a valid list
}

function isDigits(s: string): boolean {
    if (s.length === 0 || s.length > 5) return false
    for (let i = 0; i < s.length; i++) if ("0123456789".indexOf(s.charAt(i)) < 0) return false
    return true
}

// `dflt`: the port of an address that names none.
export function parseServers(text: string, dflt: number): ServerList {
    const out: ServerAddress[] = []
    if (typeof text !== "string" || text.trim() === "") return { list: out, problem: "no server address" }
    const parts = text.split(",")
    for (let i = 0; i < parts.length; i++) {
        const p = parts[i].trim()
        if (p === "") return { list: [], problem: "empty address in the list \"" + text + "\"" }
        const c = p.indexOf(":")
        let host = p
        let port = dflt
        if (c >= 0 && p.indexOf(":", c + 1) < 0) {
            const ps = p.slice(c + 1)
            host = p.slice(0, c)
            if (!isDigits(ps) || +ps < PORT.min || +ps > PORT.max) return { list: [], problem: "port of \"" + p + "\" " + wholeRange(PORT.min, PORT.max) }
            port = +ps
        }
        if (host === "" || host.indexOf(" ") >= 0) return { list: [], problem: "bad host in \"" + p + "\"" }
        out.push({ host: host, port: port })
    }
    return { list: out, problem: "" }
}

// The address after `i` (wrapping): where a client goes after a failed attempt.
export function nextServer(i: number, count: number): number {
    return count <= 1 ? 0 : (i + 1) % count
}
