// The shared suites compiled by DeviceScript and run in its VM: one set of
// cases, two runtimes. The image is built by `npm run build` (pretest).
import assert from "node:assert/strict"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { suites } from "../shared/all.js"
import { plain, ROOT, runTestImage } from "../kit/devs.js"

// The suites are split over images (test/vm/main.ts, link.ts, limits.ts);
// together they must run every shared suite.
const IMAGES = ["build/devs/shared-tests.devs", "build/devs/link-tests.devs", "build/devs/limits-tests.devs"]

describe("shared core (DeviceScript VM)", function () {
    this.timeout(660000)
    const results = new Map<string, string>() // "suite :: case" -> "pass" | failure message
    let vmLines: string[] = []
    let exitCode: number | null = null

    before(async function () {
        for (const image of IMAGES) assert.ok(existsSync(join(ROOT, image)), `${image} is missing: run "npm run build" first`)
        // The VMs side by side.
        const runs = await Promise.all(IMAGES.map((image) => runTestImage(image, 600000)))
        exitCode = runs.reduce<number | null>((code, r) => (code === 0 ? r.code : code), 0)
        vmLines = runs.flatMap((r) => plain(r.output))
        for (const l of vmLines) {
            const m = /^VMCASE (pass|fail) (.*?) :: (.*?) :: (.*)$/.exec(l)
            if (m) results.set(`${m[2]} :: ${m[3]}`, m[1] === "pass" ? "pass" : m[4])
        }
    })

    const expected = suites.reduce((n, s) => n + s.cases.length, 0)

    it(`ran the same ${expected} cases as Node, and exited 0`, function () {
        const tail = vmLines.filter((l) => l.trim() !== "").slice(-15).join("\n")
        assert.equal(results.size, expected, `the VM reported ${results.size} of ${expected} cases; its output ended:\n${tail}`)
        assert.equal(exitCode, 0, `a VM exited ${exitCode}; the output ended:\n${tail}`)
    })

    for (const s of suites) {
        describe(s.name, function () {
            for (const c of s.cases) {
                it(c.name, () => {
                    const r = results.get(`${s.name} :: ${c.name}`)
                    assert.ok(r !== undefined, "the VM did not report this case")
                    assert.equal(r, "pass", r)
                })
            }
        })
    }
})
