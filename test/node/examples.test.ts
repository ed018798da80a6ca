// Every example in examples/ runs as a user would run it, against the built
// package (imported by its name, "devs-iot"), and ends by itself.
import assert from "node:assert/strict"
import { execFile } from "node:child_process"
import { readdirSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..")
const EXPECT: Record<string, RegExp> = {
    "server-and-client.mjs": /^reply: \{"ok":true,"t":21\.5\}$/m,
    "keys.mjs": /^server read: secret reading 42$[\s\S]*server warning: auth-failed kitchen/m,
}

function run(file: string): Promise<{ code: number | null; out: string }> {
    return new Promise((done) => {
        // Bounded: the example must end by itself well within this.
        execFile(process.execPath, [file], { cwd: ROOT, timeout: 30000, killSignal: "SIGKILL" }, (err, stdout, stderr) =>
            done({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: stdout + stderr })
        )
    })
}

describe("examples", function () {
    this.timeout(40000)
    const files = readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".mjs"))

    it("every example has an expected output here", function () {
        assert.deepEqual(files.sort(), Object.keys(EXPECT).sort())
    })

    for (const f of Object.keys(EXPECT)) {
        it(`examples/${f} runs and ends by itself`, async function () {
            const r = await run(join(ROOT, "examples", f))
            assert.equal(r.code, 0, r.out)
            assert.match(r.out, EXPECT[f]!)
        })
    }
})
