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
// The server's end (serverlink.ts), report parsing and checking, and Node's
// link settings (a board's are fixed: resolveCommon): DeviceScript compiles
// every method of a class a board uses, so a board must not reach them.
const SERVER_ONLY = ["ServerLink", "ServerSocket", "openAuthenticated", "openHelloed", "mayTakeOver", "sendSecret", "endProbe", "noHello", "parseReport", "reportProblem", "resolveConfig"]

// The delivery state's records (records.ts): only the Node shell passes a
// store in, so a board image (which never records) must not reach them.
const RECORDS_ONLY = ["useStore", "follow", "restoreOwed", "StoreRecorder", "owe", "paid", "unkeep", "took", "sending"]

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

    // What no board image compiles, and where each name must still be found
    // (so that a rename does not make the check pass by itself).
    const inSet = (f: Set<string>) => (n: string) => f.has(n)
    const vmImages = () => new Set([...functions("shared-tests"), ...functions("link-tests"), ...functions("limits-tests")])
    const recordsSource = () => readFileSync(join(REPO, "src/shared/records.ts"), "utf8") + readFileSync(join(REPO, "src/shared/store.ts"), "utf8")
    const notOnBoards: Array<{ what: string; names: string[]; found: () => (name: string) => boolean; checked?: string[] }> = [
        { what: "the server's end of the Link, report parsing and checking, Node's link settings (the VM test images have them)", names: SERVER_ONLY, found: () => inSet(vmImages()) },
        { what: "the delivery state's records (records.ts defines them)", names: RECORDS_ONLY, found: () => {
            const src = recordsSource()
            return (n) => new RegExp(`\\b${n}\\(|class ${n}\\b`).test(src)
        } },
        { what: "a relay's calls: chosen ids, held lines (the link test image has them)", names: RELAY_ONLY, found: () => inSet(functions("link-tests")) },
        { what: "what only the Node shell reads of a Link (the VM test images have those they use)", names: NODE_READS, found: () => inSet(vmImages()), checked: ["isSealed", "peerLimit", "wantsRead"] },
    ]
    for (const row of notOnBoards)
        it(`a board image compiles none of ${row.what}`, function () {
            for (const image of ["demo", "remote", "qos", "qos-fast", "demo-keyed"]) {
                const f = functions(image)
                for (const name of row.names) assert.ok(!f.has(name), `${image}: ${name} compiled in`)
            }
            const found = row.found()
            for (const name of row.checked ?? row.names) assert.ok(found(name), `${name} not found (renamed?)`)
        })
})
