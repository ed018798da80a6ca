// The dashboard in a real headless Chromium: a board connects and appears,
// its traffic shows, it goes down and its row says so, without a reload. A
// board id made of HTML renders as text, one with invisible or reordering
// characters shows them as \u{...}. A screenshot is kept in
// test-output/dashboard-<date>.png (not in git); the test prints its path.
import assert from "node:assert/strict"
import { mkdirSync } from "node:fs"
import { join, relative } from "node:path"
import type { Page } from "playwright-core"
import { Client, HttpStatus, Server } from "../../src/server/index.js"
import { ROOT } from "../kit/devs.js"
import { cleanup, closeAll, onCleanup, within } from "../kit/util.js"
import { findChromium, startChromium, type Headless } from "../kit/chromium.js"

// Functions passed to page.evaluate run in the page; this project compiles
// without the DOM library.
declare const document: any
declare const window: any

// The links' timeout: well above the stalls a loaded machine running
// Chromium gives this process (a board that went down between two checks
// would fail "kitchen-1 still up"); the board that goes down closes its
// socket, which the server sees at once.
const T = 5000
const EVIL = `<img src=x onerror="window.__pwned=1"><b id="evil">board</b>`
// An id that reads as another: a right-to-left override, a zero-width space,
// DEL, a C1 control; and one spelling that out with backslashes.
const SPOOF = "invoice\u202Efdp.exe\u200B\u007F\u0085"
const SPOOF_SHOWN = "invoice\\u{202E}fdp.exe\\u{200B}\\u{7F}\\u{85}"
const LITERAL = "invoice\\u{202E}fdp.exe"
const OUT = join(ROOT, "test-output")

// The state a board's row shows, or null when it has no row.
function rowState(page: Page, id: string): Promise<string | null> {
    return page.evaluate((id) => {
        for (const tr of document.querySelectorAll("#boards tr") as any[]) if (tr.children[0].textContent === id) return tr.children[1].textContent as string
        return null
    }, id)
}

function rowIs(page: Page, id: string, state: "up" | "down"): Promise<unknown> {
    return within(
        page.waitForFunction(
            ([id, state]) => [...document.querySelectorAll("#boards tr")].some((tr: any) => tr.children[0].textContent === id && tr.children[1].textContent === state),
            [id, state] as const,
            { timeout: 15000 }
        ),
        20000,
        `row of ${JSON.stringify(id)} shows ${state}`
    )
}

describe("dashboard in headless Chromium", function () {
    this.timeout(90000)
    let chrome: Headless | undefined

    before(async function () {
        const bin = findChromium()
        if (!bin) {
            if (process.env["CI"]) throw new Error("Chromium not found; .ci/run installs it (apt-get install -y chromium)")
            console.log("      skipped: no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
            return this.skip()
        }
        chrome = await startChromium(bin)
    })
    after(async function () {
        await chrome?.stop()
    })
    afterEach(closeAll)

    it("a board appears, its traffic shows, it goes down; an id made of HTML is shown as text, one with characters that print nothing or reorder others shows them", async function () {
        const server = cleanup(new Server({ port: 0, host: "127.0.0.1", timeout: T }))
        const status = new HttpStatus(server, { port: 0 })
        await server.listen()
        await status.listen()
        onCleanup(() => status.close())

        const context = await chrome!.browser.newContext({ viewport: { width: 1500, height: 700 } })
        onCleanup(() => context.close())
        const page = await context.newPage()
        const problems: string[] = []
        page.on("pageerror", (e) => problems.push(`page error: ${e.message}`))
        page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`))
        await page.goto(`http://127.0.0.1:${status.port}/`)
        await within(page.waitForFunction(() => document.getElementById("stream").textContent === "live", undefined, { timeout: 15000 }), 20000, "event stream live")
        assert.equal(await rowState(page, "kitchen-1"), null)

        const kitchen = cleanup(new Client({ id: "kitchen-1", port: server.port, timeout: T })).start()
        const evil = cleanup(new Client({ id: EVIL, port: server.port, timeout: T })).start()
        await rowIs(page, "kitchen-1", "up")
        await rowIs(page, EVIL, "up")
        assert.equal(await page.evaluate(() => document.getElementById("evil")), null, "the id's HTML became an element")
        assert.equal(await page.evaluate(() => document.querySelectorAll("#boards img, #boards b").length), 0)
        assert.equal(await page.evaluate(() => window.__pwned), undefined)
        const spoofs = [SPOOF, LITERAL].map((id) => cleanup(new Client({ id, port: server.port, timeout: T })).start())
        await rowIs(page, SPOOF_SHOWN, "up")
        await rowIs(page, "invoice\\\\u{202E}fdp.exe", "up")
        for (const c of spoofs) await c.close()

        // Traffic for the chart: a few seconds of lines both ways.
        const conn = await server.clientConn("kitchen-1")
        for (let i = 0; i < 30; i++) {
            await kitchen.write(`t=${20 + (i % 5)}`)
            await conn.readline()
            await conn.write(`led ${i % 2}`)
            await kitchen.readline()
            if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1000))
        }
        await within(page.waitForFunction(() => document.getElementById("sum-rtt").textContent !== "–", undefined, { timeout: 15000 }), 20000, "round trip shown")

        assert.equal(kitchen.sendReport({ firmware: "1.4.2", uptime: 5400, reconnects: 2, heap: 20480, rssi: -67, reset: "power-on" }), true)
        await within(
            page.waitForFunction(() => [...document.querySelectorAll("#boards tr")].some((tr: any) => tr.children[0].textContent === "kitchen-1" && tr.children[9].textContent === "1.4.2"), undefined, { timeout: 15000 }),
            20000,
            "the board's report shown"
        )

        await evil.close()
        await rowIs(page, EVIL, "down")
        assert.equal(await rowState(page, "kitchen-1"), "up")
        await within(page.waitForFunction(() => document.getElementById("sum-up").textContent === "1", undefined, { timeout: 15000 }), 20000, "one board up in the summary")

        mkdirSync(OUT, { recursive: true })
        const shot = join(OUT, `dashboard-${new Date().toISOString().slice(0, 10)}.png`)
        await page.screenshot({ path: shot, fullPage: true })
        console.log(`      screenshot: ${relative(ROOT, shot)}`)
        assert.deepEqual(problems, [])
    })
})
