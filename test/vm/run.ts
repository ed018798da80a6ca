// Runs shared suites inside the DeviceScript VM. Prints one line per case for
// the mocha wrapper (test/node/vm.test.ts) to read, then exits 0 through
// ds.restart() when all passed (`devs run --test --test-self-exit`). The
// suites are split over more than one image: one image of them all exceeds
// what the VM verifies and what its 64 KB heap holds beside the cases.
import * as ds from "@devicescript/core"
import { hooks, Suite } from "../shared/harness.js"
import { boardCrypto } from "../../src/device/crypto.js"

function message(e: unknown): string {
    // DeviceScript's JSON.parse errors are not Error instances: read .message.
    const m = (e as { message?: unknown }).message
    return typeof m === "string" ? m : "non-Error thrown"
}

export async function runSuites(suites: Suite[]): Promise<void> {
    hooks.pause = async function () {
        await ds.sleep(0)
    }
    hooks.crypto = boardCrypto
    let passed = 0
    let failed = 0
    for (let i = 0; i < suites.length; i++) {
        const s = suites[i]
        for (let j = 0; j < s.cases.length; j++) {
            const c = s.cases[j]
            const t0 = ds.millis()
            try {
                await c.fn()
                passed++
                console.log("VMCASE pass " + s.name + " :: " + c.name + " :: " + (ds.millis() - t0) + " ms")
            } catch (e) {
                failed++
                console.log("VMCASE fail " + s.name + " :: " + c.name + " :: " + message(e))
            }
            await ds.sleep(0)
        }
    }
    console.log("VMDONE " + passed + " passed, " + failed + " failed")
    if (failed === 0) ds.restart()
    else throw new Error(failed + " shared cases failed in the VM")
}
