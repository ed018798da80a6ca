// A short fuzz run of every target (npm run fuzz does the long one).
import assert from "node:assert/strict"
import { runFuzz } from "../fuzz/main.js"

describe("fuzz (short run)", function () {
    this.timeout(60000)
    it("finds nothing in a few seconds of every target", function () {
        const seed = 20261202
        const results = runFuzz({ seed: seed, divisor: 200 })
        assert.equal(results.length, 6)
        for (const r of results) {
            assert.ok(r.inputs > 0, r.target)
            const f = r.reports[0]
            assert.equal(r.findings, 0, r.target + ": " + (f ? f.message + "\n  input: " + f.input + "\n  replay: " + f.replay : ""))
        }
    })
})
