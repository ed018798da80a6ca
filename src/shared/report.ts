// A board's report of itself (docs/protocol.md, "Extensions"): one control line
// a devs-iot client sends now and then once its link is up, and that a v1
// peer never sees (the Link sends it only to a peer that sent a hello):
//
//   !report fw=<token> up=<s> rc=<n> [heap=<bytes>] [rssi=<dBm>] [reset=<token>]
//
// Tokens are 1-32 characters of A-Z a-z 0-9 . _ + - /; numbers are whole.
// Fields a board cannot measure are left out; keys a receiver does not know
// are skipped, so a later field breaks no older server.

import type { Range } from "./config.js"
import { isWhole, wholeRange } from "./whole.js"

export const REPORT_MARK = "!report"
export const MAX_REPORT_BYTES = 200
// ms between a board's reports of itself; 0 = off.
export const REPORT_EVERY: Range = { min: 0, max: 86400000, dflt: 60000 }

export interface Report {
    firmware: string
    uptime: number // s since the board started
    reconnects: number // links that came up after the first
    heap?: number // free bytes
    rssi?: number // WiFi signal, dBm (-150 to 0)
    reset?: string // why the board last started (power-on, watchdog, ...)
}

// The line for a report, with its "\n". Its fields are not checked: a
// board builds its report from what it measured (tokens from reportToken());
// a report from elsewhere (the Node client's caller) is checked first with
// reportProblem().
export function reportLine(r: Report): string {
    let s = REPORT_MARK + " fw=" + r.firmware + " up=" + r.uptime + " rc=" + r.reconnects
    if (r.heap !== undefined) s += " heap=" + r.heap
    if (r.rssi !== undefined) s += " rssi=" + r.rssi
    if (r.reset !== undefined) s += " reset=" + r.reset
    return s + "\n"
}

// Why reportLine() would write a report a receiver refuses (parseReport), or "".
export function reportProblem(r: Report): string {
    return (
        tokenProblem("firmware", r.firmware) ||
        wholeProblem("uptime", r.uptime, 0, 4000000000) ||
        wholeProblem("reconnects", r.reconnects, 0, 4000000000) ||
        (r.heap !== undefined ? wholeProblem("heap", r.heap, 0, 4000000000) : "") ||
        (r.rssi !== undefined ? wholeProblem("rssi", r.rssi, -150, 0) : "") ||
        (r.reset !== undefined ? tokenProblem("reset", r.reset) : "")
    )
}

export function isReport(text: string): boolean {
    return text.indexOf(REPORT_MARK) === 0 && (text.length === REPORT_MARK.length || text.charCodeAt(REPORT_MARK.length) === 32)
}

// The report in a line (without "\n"), or why it is not one.
export function parseReport(text: string): Report | string {
    if (!isReport(text)) return "not a report line"
    if (text.length > MAX_REPORT_BYTES) return "report longer than " + MAX_REPORT_BYTES + " bytes"
    const r: Report = { firmware: "", uptime: -1, reconnects: -1 }
    let at = REPORT_MARK.length + 1
    while (at < text.length) {
        let end = text.indexOf(" ", at)
        if (end < 0) end = text.length
        const field = text.slice(at, end)
        at = end + 1
        if (field.length === 0) continue
        const eqAt = field.indexOf("=")
        if (eqAt <= 0) return "field without a value: " + field
        const k = field.slice(0, eqAt)
        const v = field.slice(eqAt + 1)
        if (k === "fw" || k === "reset") {
            if (!isToken(v)) return k + " is not a token of 1-32 characters (A-Z a-z 0-9 . _ + - /)"
            if (k === "fw") r.firmware = v
            else r.reset = v
        } else if (k === "up" || k === "rc" || k === "heap" || k === "rssi") {
            const n = parseWhole(v)
            const min = k === "rssi" ? -150 : 0
            const max = k === "rssi" ? 0 : 4000000000
            if (n === undefined || n < min || n > max) return k + " " + wholeRange(min, max)
            if (k === "up") r.uptime = n
            else if (k === "rc") r.reconnects = n
            else if (k === "heap") r.heap = n
            else r.rssi = n
        }
    }
    if (r.firmware === "") return "no fw field"
    if (r.uptime < 0) return "no up field"
    if (r.reconnects < 0) return "no rc field"
    return r
}

// Free text (a version string, say) as a token: other characters become
// "_", and it is cut to 32; an empty one is "unknown".
export function reportToken(s: string): string {
    let out = ""
    for (let i = 0; i < s.length && out.length < 32; i++) out += tokenChar(s.charCodeAt(i)) ? s.slice(i, i + 1) : "_"
    return out || "unknown"
}

const TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-/"

function tokenChar(c: number): boolean {
    return TOKEN_CHARS.indexOf(String.fromCharCode(c)) >= 0
}

function isToken(v: string): boolean {
    if (v.length === 0 || v.length > 32) return false
    for (let i = 0; i < v.length; i++) if (!tokenChar(v.charCodeAt(i))) return false
    return true
}

function tokenProblem(name: string, v: string): string {
    return typeof v === "string" && isToken(v) ? "" : name + " must be 1-32 characters of A-Z a-z 0-9 . _ + - /"
}

function wholeProblem(name: string, v: number, min: number, max: number): string {
    return isWhole(v, min, max) ? "" : name + " " + wholeRange(min, max)
}

// A whole number of at most 10 digits, with an optional "-", or undefined.
function parseWhole(v: string): number | undefined {
    let i = 0
    let neg = false
    if (v.charCodeAt(0) === 45) {
        neg = true
        i = 1
    }
    if (v.length === i || v.length - i > 10) return undefined
    let n = 0
    while (i < v.length) {
        const c = v.charCodeAt(i)
        if (c < 48 || c > 57) return undefined
        n = n * 10 + (c - 48)
        i++
    }
    return neg ? -n : n
}
