// The v1 line codec (docs/protocol.md, "Lines after the handshake"), plus the
// extension lines devs-iot peers exchange once both have said they speak them.
// Lines arrive without their "\n"; a bad line is a value, never an exception.

import { hexByte, hexId } from "./hex.js"

export const NEWLINE = 10
const EXT_MARK = 33 // "!": never a hex digit, so never a v1 line

export type Line =
    | { kind: "keepalive" }
    | { kind: "ack"; id: number }
    | { kind: "message"; id: number; payload: string }
    | { kind: "ext"; text: string }
    | { kind: "bad"; reason: string }

export function parseLine(line: Buffer): Line {
    const n = line.length
    if (n === 0) return { kind: "keepalive" }
    if (line[0] === EXT_MARK) return { kind: "ext", text: line.toString("utf-8") }
    if (n === 1) return { kind: "bad", reason: "one-byte line (neither keepalive, ACK nor message)" }
    const id = hexId(line[0], line[1])
    if (id < 0) return { kind: "bad", reason: "line does not start with a two-digit hex id" }
    if (n === 2) return { kind: "ack", id: id }
    return { kind: "message", id: id, payload: line.slice(2).toString("utf-8") }
}

export const KEEPALIVE_LINE = "\n"

export function ackLine(id: number): string {
    return hexByte(id) + "\n"
}

export function messageLine(id: number, payload: string): string {
    return hexByte(id) + payload + "\n"
}
