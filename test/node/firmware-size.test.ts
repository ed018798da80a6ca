// What the board images compile in, from the build's size reports
// (build/devs/<image>.sizes.md, written by tools/build-devs.mjs in npm run
// build): an image without a key carries no handshake, sealing or crypto,
// no board image carries the server's end of the Link, the delivery
// state's records, a relay's calls or what only the Node shell reads.
import assert from "node:assert/strict"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { REPO } from "../../src/server/cli/sim.js"

const KEYED_ONLY = ["deriveSession", "proofOk", "seal", "hmac", "sha256Hkdf", "keyStore", "parseRekey", "linkAuth", "validNonce", "newNonce", "answerLine"]
// The server's end (serverlink.ts) and report parsing: DeviceScript compiles
// every method of a class a board uses, so a board must not reach them.
const SERVER_ONLY = ["ServerLink", "ServerSocket", "openAuthenticated", "openHelloed", "mayTakeOver", "sendSecret", "endProbe", "noHello", "parseReport"]

// The delivery state's records (records.ts): only the Node shell passes a
// store in, so a board image (which never records) must not reach them.
const RECORDS_ONLY = ["useStore", "restoreOwed", "StoreRecorder", "owe", "paid", "unkeep", "took", "sending"]

// A relay's calls (relay.ts): chosen ids and held lines, the gateway's.
const RELAY_ONLY = ["writeAs", "hold", "settle", "holdingCount", "HeldLine"]

// What the Node shell and the tests read of a Link (linkinfo.ts).
const NODE_READS = ["isSealed", "peerLimit", "readable", "isClosed", "queuedWrites", "hasSocket", "unsentBytes", "wantsRead"]

function functions(image: string): Set<string> {
    const text = readFileSync(join(REPO, "build/devs", `${image}.sizes.md`), "utf8")
    return new Set([...text.matchAll(/\|\s*`([^`]+)`/g)].map((m) => m[1]!))
}

describe("firmware images", function () {
    before(function () {
        if (!existsSync(join(REPO, "build/devs/demo.sizes.md"))) throw new Error("build/devs/demo.sizes.md missing: run npm run build")
    })

    it("an image built without IOT_KEY compiles in no authentication or encryption; src/main.ts does", function () {
        const sizes = JSON.parse(readFileSync(join(REPO, "build/devs/sizes.json"), "utf8")) as Record<string, { keyed?: boolean }>
        for (const image of ["demo", "remote", "qos", "qos-fast"]) {
            if (sizes[image]!.keyed) continue // built with a key in .env.local
            const f = functions(image)
            for (const name of KEYED_ONLY) assert.ok(!f.has(name), `${image}: ${name} compiled in`)
        }
        const keyed = functions("demo-keyed")
        for (const name of KEYED_ONLY) assert.ok(keyed.has(name), `demo-keyed: ${name} missing`)
    })

    it("a board image compiles the client's end of the Link only: nothing of ServerLink, no report parsing; the shared test image has them", function () {
        for (const image of ["demo", "remote", "qos", "qos-fast", "demo-keyed"]) {
            const f = functions(image)
            for (const name of SERVER_ONLY) assert.ok(!f.has(name), `${image}: ${name} compiled in`)
        }
        const tests = functions("shared-tests")
        for (const name of SERVER_ONLY) assert.ok(tests.has(name), `shared-tests: ${name} missing (renamed?)`)
    })

    it("a board image compiles none of the delivery state's records (it never records)", function () {
        for (const image of ["demo", "remote", "qos", "qos-fast", "demo-keyed"]) {
            const f = functions(image)
            for (const name of RECORDS_ONLY) assert.ok(!f.has(name), `${image}: ${name} compiled in`)
        }
        const src = readFileSync(join(REPO, "src/shared/records.ts"), "utf8") + readFileSync(join(REPO, "src/shared/store.ts"), "utf8")
        for (const name of RECORDS_ONLY) assert.ok(new RegExp(`\\b${name}\\(|class ${name}\\b`).test(src), `records.ts: ${name} missing (renamed?)`)
    })

    it("a board image compiles none of a relay's calls (chosen ids, held lines); the link test image has them", function () {
        for (const image of ["demo", "remote", "qos", "qos-fast", "demo-keyed"]) {
            const f = functions(image)
            for (const name of RELAY_ONLY) assert.ok(!f.has(name), `${image}: ${name} compiled in`)
        }
        const tests = functions("link-tests")
        for (const name of RELAY_ONLY) assert.ok(tests.has(name), `link-tests: ${name} missing (renamed?)`)
    })

    it("a board image compiles none of what only the Node shell reads of a Link; the VM test images have those they use", function () {
        for (const image of ["demo", "remote", "qos", "qos-fast", "demo-keyed"]) {
            const f = functions(image)
            for (const name of NODE_READS) assert.ok(!f.has(name), `${image}: ${name} compiled in`)
        }
        const tests = new Set([...functions("shared-tests"), ...functions("link-tests"), ...functions("limits-tests")])
        for (const name of ["isSealed", "peerLimit", "wantsRead"]) assert.ok(tests.has(name), `VM test images: ${name} missing (renamed?)`)
    })
})
