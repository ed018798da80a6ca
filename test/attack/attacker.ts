// One attacker process of the live attack run (npm run attack). It connects
// to a devs-iot server from the loopback addresses it is given, in a mix of
// hostile kinds, each with a number of concurrent slots, until its time is
// up. Every second, and at the end, it prints "@A <json counts>" on stdout.
//
//   node attacker.js --port P --addrs 127.0.0.2,127.0.0.3 --seconds S [--kinds k,k] [--slots N]
//
// Kinds:
//   garbage    random bytes with control bytes, then "\n" (a bad id)
//   oversized  a 70 KB id line with no "\n"
//   bigline    a unique id, then a 100 KB line (over maxLineBytes), then close
//   slowloris  one byte of an id per second, never a "\n"
//   flood      a unique id, then 5,000 lines in one write
//   idspam     a unique valid id, then close at once
//   close      connect and close at once
// Loopback only; it exits by itself after --seconds plus at most 5 s.
import { connect, type Socket } from "node:net"
import { parseArgs } from "node:util"
import { randomBytes } from "node:crypto"
import { writeSync } from "node:fs"

export const KINDS = ["garbage", "oversized", "bigline", "slowloris", "flood", "idspam", "close"] as const
type Kind = (typeof KINDS)[number]

const { values } = parseArgs({
    options: {
        port: { type: "string" },
        addrs: { type: "string" },
        seconds: { type: "string", default: "30" },
        kinds: { type: "string", default: KINDS.join(",") },
        slots: { type: "string", default: "8" },
        tag: { type: "string", default: "a" },
    },
})
const port = Number(values.port)
const addrs = (values.addrs ?? "").split(",").filter((a) => a !== "")
for (const a of addrs) if (!/^127\.\d+\.\d+\.\d+$/.test(a)) throw new Error(`attacker: loopback addresses only, got ${a}`)
const seconds = Number(values.seconds)
const kinds = values.kinds!.split(",") as Kind[]
const slots = Number(values.slots)
const tag = values.tag!
const end = Date.now() + seconds * 1000

const counts = { connections: 0, lines: 0, bytes: 0, cut: 0, refusedAtConnect: 0, errors: 0, byKind: {} as Record<string, number> }
let nextAddr = 0
let serial = 0

function report(final: boolean): void {
    writeSync(1, "@A " + JSON.stringify({ ...counts, final }) + "\n")
}

function countLines(b: Buffer | string): number {
    const buf = typeof b === "string" ? Buffer.from(b) : b
    let n = 0
    for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) n++
    return n
}

function send(s: Socket, b: Buffer | string): void {
    if (s.destroyed) return
    counts.lines += countLines(b)
    counts.bytes += typeof b === "string" ? Buffer.byteLength(b) : b.length
    s.write(b)
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

// One hostile connection; resolves when it is closed (by either side).
function once(kind: Kind): Promise<void> {
    return new Promise((resolve) => {
        const localAddress = addrs[nextAddr++ % addrs.length]!
        const s = connect({ port, host: "127.0.0.1", localAddress })
        const timers: NodeJS.Timeout[] = []
        let connected = false
        // Every connection ends within 20 s whatever the server does.
        timers.push(setTimeout(() => s.destroy(), 20000))
        s.on("error", () => {
            if (!connected) counts.errors++
        })
        s.on("data", () => {})
        s.once("close", () => {
            for (const t of timers) clearTimeout(t)
            resolve()
        })
        s.once("connect", () => {
            connected = true
            counts.connections++
            counts.byKind[kind] = (counts.byKind[kind] ?? 0) + 1
            const id = `${tag}-${kind}-${serial++}`
            switch (kind) {
                case "garbage": {
                    const b = randomBytes(16 + (serial % 48))
                    b[0] = 1 // at least one control byte
                    send(s, Buffer.concat([b, Buffer.from("\n")]))
                    break
                }
                case "oversized":
                    send(s, Buffer.alloc(70000, 0x41))
                    break
                case "bigline":
                    send(s, id + "\n" + "00" + "x".repeat(100000) + "\n")
                    s.end()
                    break
                case "slowloris":
                    timers.push(setInterval(() => send(s, "s"), 1000))
                    break
                case "flood":
                    send(s, id + "\n" + "zz\n".repeat(5000))
                    break
                case "idspam":
                    send(s, id + "\n")
                    s.destroy()
                    break
                case "close":
                    s.destroy()
                    break
            }
            s.once("close", () => counts.cut++)
        })
    })
}

async function slot(kind: Kind): Promise<void> {
    while (Date.now() < end) {
        const before = counts.errors
        await once(kind)
        if (counts.errors > before) await sleep(20) // e.g. no free port: do not spin
    }
}

const ticker = setInterval(() => report(false), 1000)
const hardStop = setTimeout(() => (report(true), process.exit(0)), seconds * 1000 + 5000)
hardStop.unref()
await Promise.all(kinds.flatMap((k) => Array.from({ length: k === "slowloris" ? slots * 4 : slots }, () => slot(k))))
clearInterval(ticker)
report(true)
process.exit(0)
