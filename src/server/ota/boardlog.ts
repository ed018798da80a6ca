// A board's console log and exceptions as wssk streams them: dmesg chunks
// (cmd 0x9a, up to 256 bytes, lines cut anywhere) and, after an unhandled
// exception, the whole dmesg buffer again (cmd 0x9b, several messages).
// Program lines start with "> "; the exception is the last block of lines
// starting with "*" or "!" from "* Exception:" on (measured, docs/devicescript.md, "The runtime's gateway channel (wssk)").

const MAX_PARTIAL_BYTES = 1024 // a longer line is cut
export const MAX_EXCEPTION_REPORT_BYTES = 16 * 1024 // the ESP32's dmesg buffer is 4 KB

const LINE_CUT = " [cut]"

type LogLine = { kind: "console" | "runtime"; text: string }

// Whole lines of a stream; a line longer than `max` bytes is passed on in
// pieces of `max`, each marked, so a sender that never ends its line holds at
// most `max` bytes here.
export class LineSplitter {
    private partial: Buffer = Buffer.alloc(0)

    constructor(private readonly max = MAX_PARTIAL_BYTES) {}

    push(chunk: Buffer): string[] {
        const lines: string[] = []
        let b = this.partial.length ? Buffer.concat([this.partial, chunk]) : chunk
        for (;;) {
            const nl = b.indexOf(10)
            if (nl >= 0 && nl <= this.max) {
                lines.push(b.subarray(0, nl).toString("utf8"))
                b = b.subarray(nl + 1)
            } else if (b.length > this.max) {
                lines.push(b.subarray(0, this.max).toString("utf8") + LINE_CUT)
                b = b.subarray(this.max)
            } else break
        }
        this.partial = Buffer.from(b)
        return lines
    }

    flush(): string[] {
        const rest = this.partial.toString("utf8")
        this.partial = Buffer.alloc(0)
        return rest ? [rest] : []
    }
}

export function classify(line: string): LogLine {
    if (line.startsWith("> ")) return { kind: "console", text: line.slice(2) }
    return { kind: "runtime", text: line }
}

export interface ExceptionReport {
    name: string
    message: string
    stack: string[]
    program?: string // DevS-SHA256 of the program that threw
}

// The last exception in a report (the whole dmesg buffer), or undefined.
export function parseException(report: string): ExceptionReport | undefined {
    const lines = report.split("\n")
    let start = -1
    for (let i = 0; i < lines.length; i++) if (/^[*!] Exception:/.test(lines[i]!)) start = i
    if (start < 0) return undefined
    let program: string | undefined = undefined
    for (let i = 0; i < start; i++) {
        const m = /DevS-SHA256:\s+([0-9a-f]{64})/.exec(lines[i]!)
        if (m) program = m[1]
    }
    const block = lines.slice(start).filter((l) => l.startsWith("*") || l.startsWith("!"))
    const name = /^[*!] Exception:\s*(\S+)/.exec(block[0]!)?.[1] ?? "(no name)"
    let message = ""
    const stack: string[] = []
    for (const l of block.slice(1)) {
        const m = /^[*!]\s+message:\s?(.*)$/.exec(l)
        if (m) message = m[1]!
        else if (/^[*!]\s+at /.test(l)) stack.push(l.slice(1).trim())
    }
    return { name, message, stack, program }
}
