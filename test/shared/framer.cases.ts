import { HandoffFramer, LineFramer, Frame } from "../../src/shared/framer.js"
import { bytes, eq, eqList, hooks, ok, suite } from "./harness.js"

function drain(f: LineFramer): string[] {
    const out: string[] = []
    while (true) {
        const x: Frame | undefined = f.next()
        if (x === undefined) return out
        out.push(x.kind === "line" ? x.line.toString("utf-8") : "<too-long>")
    }
}

// No String.repeat on DeviceScript.
function rep(c: string, n: number): string {
    let s = ""
    for (let i = 0; i < n; i++) s += c
    return s
}

const SAMPLE = "00h\u00e9llo\n\n0a\n01\u20ac \ud83d\ude00\nzz\n"
const SAMPLE_LINES = ["00h\u00e9llo", "", "0a", "01\u20ac \ud83d\ude00", "zz"]

export const framerSuite = suite("framer", function (test) {
    test("transport: several lines in one chunk", async function () {
        const f = new LineFramer(100)
        f.push(bytes(SAMPLE))
        eqList(drain(f), SAMPLE_LINES, "lines")
    })
    test("fault 3: a chunk boundary at every byte, also inside UTF-8 characters", async function () {
        const all = bytes(SAMPLE)
        for (let cut = 1; cut < all.length; cut++) {
            const f = new LineFramer(100)
            f.push(all.slice(0, cut))
            const got = drain(f)
            f.push(all.slice(cut))
            const rest = drain(f)
            for (let i = 0; i < rest.length; i++) got.push(rest[i])
            eqList(got, SAMPLE_LINES, "split at " + cut)
        }
    })
    test("transport: one byte per chunk", async function () {
        const all = bytes(SAMPLE)
        const f = new LineFramer(100)
        let got: string[] = []
        for (let i = 0; i < all.length; i++) {
            f.push(all.slice(i, i + 1))
            const d = drain(f)
            for (let j = 0; j < d.length; j++) got.push(d[j])
        }
        eqList(got, SAMPLE_LINES, "lines")
    })
    test("a partial line waits for its end", async function () {
        const f = new LineFramer(100)
        f.push(bytes("00abc"))
        eq(f.next(), undefined, "no line yet")
        eq(f.buffered(), 5, "buffered")
        f.push(bytes("def\n"))
        eqList(drain(f), ["00abcdef"], "joined")
        eq(f.buffered(), 0, "nothing left")
    })
    test("over-long line: reported once, skipped, framing resumes after its newline", async function () {
        const f = new LineFramer(8)
        f.push(bytes("0123456789abcdef\n01ok\n"))
        eqList(drain(f), ["<too-long>", "01ok"], "lines")
    })
    test("over-long line across chunks is not stored", async function () {
        const f = new LineFramer(8)
        f.push(bytes("0123"))
        eqList(drain(f), [], "nothing yet")
        f.push(bytes("456789"))
        eqList(drain(f), ["<too-long>"], "reported when the limit is passed")
        for (let i = 0; i < 20; i++) {
            f.push(bytes("xxxxxxxxxxxxxxxx"))
            eqList(drain(f), [], "still skipping")
            ok(f.buffered() <= 8, "buffered bytes stay bounded, got " + f.buffered())
        }
        f.push(bytes("yy\n02next\n"))
        eqList(drain(f), ["02next"], "resumes")
    })
    test("over-long line: its bytes are dropped as they are pushed, before any next()", async function () {
        const f = new LineFramer(100)
        const chunk = Buffer.alloc(4000)
        for (let i = 0; i < 4; i++) {
            f.push(chunk) // zeros: no newline
            ok(f.buffered() <= 100, "push " + i + ": buffered " + f.buffered())
        }
        f.push(bytes("tail\n05ok\n"))
        eqList(drain(f), ["<too-long>", "05ok"], "reported once, then the next line")
    })
    test("over-long lines whole inside one chunk are dropped as they are pushed", async function () {
        const f = new LineFramer(100)
        const big = "01" + rep("x", 1000) // 4000 ran the test VM out of heap beside the report cases
        f.push(bytes("00a\n" + big + "\n02b\n" + big + "\n" + big + "\n03c\n04"))
        ok(f.buffered() < 30, "buffered " + f.buffered())
        f.push(bytes("d\n"))
        eqList(drain(f), ["00a", "<too-long>", "02b", "<too-long>", "<too-long>", "03c", "04d"], "lines")
    })
    test("an over-long line begun in an earlier chunk and ended in a big one is dropped", async function () {
        const f = new LineFramer(100)
        f.push(bytes("00a\n01" + rep("y", 60)))
        f.push(bytes(rep("z", 300) + "\n02b\n"))
        ok(f.buffered() < 80, "buffered " + f.buffered())
        eqList(drain(f), ["00a", "<too-long>", "02b"], "lines")
    })
    test("a chunk of short lines longer than the maximum is queued whole, not cut per line", async function () {
        const f = new HandoffFramer(8)
        f.push(bytes("00a\n01b\n02c\n03d\n04e"))
        eq(f.takeRest().length, 1, "one buffer queued")
    })
    test("a line of exactly the maximum is delivered", async function () {
        const f = new LineFramer(4)
        f.push(bytes("abcd\nabcde\nab"))
        f.push(bytes("cd\n"))
        eqList(drain(f), ["abcd", "<too-long>", "abcd"], "lines")
    })
    test("bounded steps: each next() returns at most one line", async function () {
        let s = ""
        for (let i = 0; i < 200; i++) s += "\n"
        const f = new LineFramer(10)
        f.push(bytes(s))
        let n = 0
        while (f.next() !== undefined) n++
        eq(n, 200, "200 calls for 200 lines")
    })
    test("bounded steps: a 20 KB chunk of 400 lines is framed one line per step, yielding between", async function () {
        const line = bytes("05" + "0123456789012345678901234567890123456789012345\n") // 49 bytes
        const n = 400 // 48 KB no longer fits the test VM's heap beside the auth cases
        const chunk = Buffer.alloc(line.length * n)
        for (let i = 0; i < n; i++) {
            chunk.set(line, i * line.length)
            if (i % 100 === 99) await hooks.pause()
        }
        const f = new LineFramer(64)
        f.push(chunk)
        let lines = 0
        while (true) {
            const x = f.next()
            if (x === undefined) break
            if (x.kind === "line" && x.line.length === line.length - 1) lines++
            if (lines % 50 === 0) await hooks.pause()
        }
        eq(lines, n, "lines")
        eq(f.buffered(), 0, "all consumed")
    })
    test("takeRest: the bytes after a line, partial line included", async function () {
        const f = new LineFramer(100)
        f.push(bytes("id\n\n0"))
        f.push(bytes("1x"))
        eqList(drain(f).slice(0, 1), ["id"], "id first")
        const f2 = new HandoffFramer(100)
        f2.push(bytes("id\n\n0"))
        f2.push(bytes("1x"))
        const first = f2.next()
        eq(first && first.kind === "line" ? first.line.toString("utf-8") : "", "id", "id line")
        const rest = f2.takeRest()
        let joined = ""
        for (let i = 0; i < rest.length; i++) joined += rest[i].toString("utf-8")
        eq(joined, "\n01x", "rest")
        eq(f2.next(), undefined, "framer empty after takeRest")
    })
})

