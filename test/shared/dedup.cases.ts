import { SeenIds } from "../../src/shared/dedup.js"
import { eq, hooks, suite } from "./harness.js"

export const dedupSuite = suite("de-duplication set", function (test) {
    test("de-duplication: a marked id is seen, others are not", async function () {
        const s = new SeenIds()
        s.mark(5)
        eq(s.has(5), true, "5 seen")
        eq(s.has(4), false, "4 not seen")
        eq(s.has(6), false, "6 not seen")
    })
    test("de-duplication: marking m clears ids m-m%8+128 .. +135 (mod 256)", async function () {
        for (let m = 0; m < 256; m += 13) {
            const base = m - (m % 8) + 128
            const t = new SeenIds()
            t.mark((m - (m % 8) + 255) & 255) // the id before m's byte: m is a one-byte step
            for (let k = -1; k <= 8; k++) t.mark((base + k) & 255)
            t.mark(m)
            eq(t.has(m), true, "m itself seen")
            for (let k = 0; k < 8; k++) eq(t.has((base + k) & 255), false, "id " + ((base + k) & 255) + " cleared by " + m)
            eq(t.has((base + 8) & 255), true, "id after the cleared byte kept")
            eq(t.has((base - 1) & 255), true, "id before the cleared byte kept")
        }
    })
    test("de-duplication: ids become new again after the sequence wraps", async function () {
        const s = new SeenIds()
        for (let i = 0; i < 256; i++) s.mark(i)
        // A sender that went on from 255 to 1, 2, ...: each is new by the time it returns.
        for (let seq = 1; seq < 600; seq++) {
            const id = ((seq - 1) % 255) + 1
            // After a full sweep the set holds only the last ~128 ids.
            if (seq > 255) eq(s.has(id), false, "id " + id + " new at seq " + seq)
            s.mark(id)
        }
    })
    test("de-duplication: ids after a gap of up to 120 lost ids are new (v1 took some for duplicates)", async function () {
        for (let gap = 8; gap <= 120; gap += 28) {
            const s = new SeenIds()
            for (let seq = 1; seq < 1200; seq++) {
                if (seq % 100 === 0) await hooks.pause() // the VM stops loops that never yield
                if (seq >= 300 && seq < 300 + gap) continue
                const id = ((seq - 1) % 255) + 1
                if (seq > 255) eq(s.has(id), false, "gap " + gap + ": id " + id + " new at seq " + seq)
                s.mark(id)
            }
        }
    })
    test("de-duplication: an id resent within 119 of the newest is still a duplicate", async function () {
        const s = new SeenIds()
        for (let seq = 1; seq < 700; seq++) {
            if (seq % 100 === 0) await hooks.pause()
            s.mark(((seq - 1) % 255) + 1)
        }
        for (let back = 1; back <= 119; back++) eq(s.has(((699 - back - 1) % 255) + 1), true, back + " back")
        s.mark(((650 - 1) % 255) + 1) // an older id resent: the newest stays
        eq(s.has(((699 - 119 - 1) % 255) + 1), true, "119 back after a resend")
    })
    test("de-duplication: clear() forgets every id", async function () {
        const s = new SeenIds()
        s.mark(0)
        s.mark(200)
        s.clear()
        eq(s.has(0), false, "0")
        eq(s.has(200), false, "200")
    })
})
