// The shared suites on Node. The same cases run in the DeviceScript VM
// (vm.test.ts), which checks it ran as many.
import { suites } from "../shared/all.js"
import { hooks } from "../shared/harness.js"
import { nodeCrypto } from "../../src/server/nodecrypto.js"

hooks.crypto = nodeCrypto

for (const s of suites) {
    describe("shared core (Node): " + s.name, function () {
        for (const c of s.cases) it(c.name, c.fn)
    })
}
