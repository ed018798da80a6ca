// The shared suites on Node. The same cases run in the DeviceScript VM
// (vm.test.ts), which checks it ran as many.
import { suites } from "../shared/all.js"

for (const s of suites) {
    describe("shared core (Node): " + s.name, function () {
        for (const c of s.cases) it(c.name, c.fn)
    })
}
