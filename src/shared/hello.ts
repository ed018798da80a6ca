// The devs-iot extension handshake (docs/protocol.md, "Extensions").
//
// A v1 peer must never see an extension line, and blank lines are the only
// bytes both original ends skip. So a devs-iot client sends PROBE_BLANKS
// blank lines in the same write as its id. A v1 client sends one keepalive
// per timeout/4 and the server sends its first line by then, so a server that
// counts PROBE_BLANKS blank lines after the id before it has sent anything is
// talking to devs-iot. Only then does it send `!hello`, and only a client that
// received one answers with its own. A probe cut by TCP at worst leaves both
// ends on v1 rules.
//
// The hello carries the sender's epoch: a random token drawn when its id
// sequence starts (process start on a client, a new Connection on a server).
// A new epoch is an exact restart marker, which v1 lacks (fault 1).

export const PROBE_BLANKS = 10

// A server's count of a new socket's probe: blank() is true once the
// PROBE_BLANKS-th blank line has come (the Link's probe phase and the keyed
// handshake both count with it).
export class ProbeCount {
    private blanks = 0
    blank(): boolean {
        this.blanks++
        return this.blanks >= PROBE_BLANKS
    }
}

// The value of ` name=value` in a hello or auth line, or "" when absent.
export function helloField(text: string, name: string): string {
    const at = text.indexOf(" " + name + "=")
    if (at < 0) return ""
    const start = at + name.length + 2
    let end = text.indexOf(" ", start)
    if (end < 0) end = text.length
    return text.slice(start, end)
}

// The " max=" field of a hello: the sender's line limit (limits.ts).
export function maxField(max: number | undefined): string {
    return max === undefined ? "" : " max=" + max
}

// `max`: the sender's maxLineBytes (limits.ts), read by peers that know it;
// older parsers stop the epoch at the space before it.
export function helloLine(epoch: string, max?: number): string {
    return "!hello epoch=" + epoch + maxField(max) + "\n"
}

// The epoch of a hello line, "" for a hello without one, or undefined when the
// line is not a hello.
export function parseHello(text: string): string | undefined {
    if (text.indexOf("!hello") !== 0) return undefined
    if (text.length > 6 && text.charCodeAt(6) !== 32) return undefined
    const e = helloField(text, "epoch")
    return e.length <= 64 ? e : ""
}

export function probeBlanks(): string {
    let s = ""
    for (let i = 0; i < PROBE_BLANKS; i++) s += "\n"
    return s
}
