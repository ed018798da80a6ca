// Every board in boards/ gets every firmware image (built by `npm run build`,
// tools/build-devs.mjs), and flashing is pinned to the runtime the firmware
// was tested with (tools/flash.mjs).
import assert from "node:assert/strict"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { basename, join } from "node:path"
import { pathToFileURL } from "node:url"
import { DEVS_CLI, ROOT } from "../kit/devs.js"

const APPS = ["demo", "remote", "qos", "qos-fast"]
const DEVKIT = "devs_iot_esp32_devkit_c"
const boards = readdirSync(join(ROOT, "boards"))
    .filter((f) => f.endsWith(".board.json"))
    .map((f) => f.replace(/\.board\.json$/, ""))

describe("boards", function () {
    it("ESP32 DevKitC, ESP32-C3, ESP32-S3, ESP32-S2 and Pico W have board files based on DeviceScript's own", function () {
        const archs = boards.map((b) => JSON.parse(readFileSync(join(ROOT, "boards", `${b}.board.json`), "utf8")).archId).sort()
        assert.deepEqual(archs, ["esp32", "esp32c3", "esp32s2", "esp32s3", "rp2040w"])
    })

    for (const b of boards)
        it(`every app was built for ${b}`, function () {
            for (const app of APPS) {
                const f = join(ROOT, "build/devs", b === DEVKIT ? `${app}.devs` : `${app}.${b}.devs`)
                assert.ok(existsSync(f), `${f} is missing: run "npm run build"`)
                assert.ok(statSync(f).size > 1000, `${f} is an image`)
            }
        })

    it("flashing is pinned to the CLI's runtime version, in the cache slot `devs flash` reads", async function () {
        const { pinned, RUNTIME } = await import(pathToFileURL(join(ROOT, "tools/flash.mjs")).href)
        const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"))
        assert.equal(RUNTIME, pkg.devDependencies["@devicescript/cli"])
        assert.match(RUNTIME, /^\d+\.\d+\.\d+$/, "an exact version")
        const cli = readFileSync(DEVS_CLI, "utf8")
        for (const b of boards) {
            const p = pinned(b)
            assert.ok(p.url.includes(`/releases/download/v${RUNTIME}/`), p.url)
            // `devs flash` caches what it downloads under the URL's file name.
            const file = basename(p.cache)
            assert.ok(cli.includes(`bareUrl: "https://github.com/`) && cli.includes(`/releases/latest/download/${file}"`), `the CLI fetches ${file} for ${p.arch}`)
            assert.equal(basename(p.url), file)
        }
    })
})
