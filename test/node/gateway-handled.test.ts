// The down packet ids a board session has handled (HandledIds): the span
// back from the newest, less the ids it skipped over, across the 16-bit wrap.
import assert from "node:assert/strict"
import { HandledIds } from "../../src/server/gateway.js"

function handled(...pids: number[]): HandledIds {
    const h = new HandledIds()
    for (const p of pids) h.handled(p)
    return h
}

function range(from: number, n: number): number[] {
    return Array.from({ length: n }, (_, i) => ((from - 1 + i) % 65535) + 1)
}

describe("gateway: down packet ids handled (HandledIds)", function () {
    it("none handled: none known", function () {
        assert.equal(new HandledIds().has(1), false)
    })

    it("a run of ids: each known, none before or after it", function () {
        const h = handled(...range(10, 11))
        for (let p = 10; p <= 20; p++) assert.ok(h.has(p), `${p}`)
        assert.equal(h.has(9), false)
        assert.equal(h.has(21), false)
        assert.equal(h.has(60000), false)
    })

    it("ids skipped over are not known until they come", function () {
        const h = handled(10, 15, 16)
        for (const p of [11, 12, 13, 14]) assert.equal(h.has(p), false, `${p}`)
        h.handled(12)
        assert.ok(h.has(12))
        assert.equal(h.has(11), false)
        assert.equal(h.has(13), false)
        h.handled(11)
        h.handled(14)
        assert.ok(h.has(11) && h.has(14) && h.has(10) && h.has(16))
        assert.equal(h.has(13), false)
    })

    it("across the wrap from 65535 to 1 (0 is never an id)", function () {
        const h = handled(...range(65530, 12))
        for (const p of [65530, 65535, 1, 6]) assert.ok(h.has(p), `${p}`)
        assert.equal(h.has(65529), false)
        assert.equal(h.has(7), false)
        const g = handled(65534, 2)
        assert.equal(g.has(65535), false)
        assert.equal(g.has(1), false)
        assert.ok(g.has(65534) && g.has(2))
    })

    it("kept 32,767 ids back from the newest", function () {
        const h = handled(...range(1, 40000))
        assert.ok(h.has(40000 - 32767))
        assert.equal(h.has(40000 - 32768), false)
        assert.equal(h.has(40001), false)
    })

    it("over 32 runs skipped, the span starts after the oldest", function () {
        const pids: number[] = []
        for (let i = 0; i < 40; i++) pids.push(100 + 3 * i)
        const h = handled(...pids)
        assert.equal(h.has(100), false, "before the oldest run kept")
        assert.ok(h.has(100 + 3 * 39))
        assert.ok(h.has(100 + 3 * 20))
        assert.equal(h.has(100 + 3 * 20 + 1), false)
    })

    it("an id far ahead of the newest is a new one, never known", function () {
        const h = handled(5, 6)
        h.handled(30000)
        assert.ok(h.has(30000))
        assert.equal(h.has(29999), false)
        assert.ok(h.has(6))
    })
})
