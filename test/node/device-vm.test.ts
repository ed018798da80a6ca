// The board shell's own cases (test/vm/device.ts) in the DeviceScript VM:
// settings as the board reads them, bounded waits without fiber leaks, late
// connect results. The image is built by `npm run build`.
import assert from "node:assert/strict"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { plain, ROOT, runTestImage } from "../kit/devs.js"

const IMAGE = "build/devs/device-tests.devs"

describe("board shell (DeviceScript VM)", function () {
    this.timeout(300000)
    const results = new Map<string, string>()
    let lines: string[] = []
    let code: number | null = null

    before(async function () {
        assert.ok(existsSync(join(ROOT, IMAGE)), `${IMAGE} is missing: run "npm run build" first`)
        const r = await runTestImage(IMAGE, 240000)
        code = r.code
        lines = plain(r.output)
        for (const l of lines) {
            const m = /^VMCASE (pass|fail) device :: (.*?) :: (.*)$/.exec(l)
            if (m) results.set(m[2]!, m[1] === "pass" ? "pass" : m[3]!)
        }
    })

    it("every case passed and the VM exited 0", function () {
        const tail = lines.filter((l) => l.trim() !== "").slice(-15).join("\n")
        assert.ok(results.size >= 6, `the VM reported ${results.size} cases; its output ended:\n${tail}`)
        for (const [name, r] of results) assert.equal(r, "pass", `${name}: ${r}`)
        assert.equal(code, 0, `the VM exited ${code}; its output ended:\n${tail}`)
    })
})
