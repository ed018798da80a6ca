// Board settings through DeviceScript's own .env parser: a real `devs build`
// in a scratch project, with tools/devs-settings-hook.cjs recording what the
// CLI's compiler read (what deploy sends to the board), and the project's
// build check (tools/env-check.mjs) against it. `devs-iot flash` runs the
// same check (src/server/envfiles.ts) on its model of that parser, which
// must read the files as the real one did.
import assert from "node:assert/strict"
import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { DEVS_CLI, ROOT } from "../kit/devs.js"
import { checkEnvFiles, parseEnvFiles } from "../../src/server/envfiles.js"

type Parsed = Record<string, string | null>
type Check = (root: string, parsed: Parsed) => string[]

// The .env lines of a file: name and the value as written (comments and blanks skipped).
function settingLines(text: string): Array<[string, string]> {
    return text
        .split(/\r?\n/)
        .filter((l) => l.trim() !== "" && !l.trim().startsWith("#"))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as [string, string])
}

// The fenced ```dotenv block of the README: the settings block users copy.
function docsBlock(): string {
    const md = readFileSync(join(ROOT, "README.md"), "utf8")
    const m = /```dotenv\n([\s\S]*?)```/.exec(md)
    assert.ok(m, "README.md has a ```dotenv settings block")
    return m[1]!
}

async function parse(files: Record<string, string>): Promise<{ dir: string; parsed: Parsed }> {
    const dir = mkdtempSync(join(tmpdir(), "devs-iot-env-"))
    mkdirSync(join(dir, "src"))
    writeFileSync(join(dir, "devsconfig.json"), "{}\n")
    writeFileSync(join(dir, "package.json"), '{"name":"env-check","version":"0.0.0","private":true}\n')
    writeFileSync(join(dir, "src/main.ts"), 'console.log("settings")\n')
    for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text)
    const out = join(dir, "settings.json")
    await new Promise<void>((resolve, reject) =>
        execFile(
            process.execPath,
            ["-r", join(ROOT, "tools/devs-settings-hook.cjs"), DEVS_CLI, "build", "--quiet", "src/main.ts"],
            { cwd: dir, env: { ...process.env, NO_UPDATE_NOTIFIER: "1", DEVS_IOT_SETTINGS_OUT: out }, timeout: 180000 },
            (err, stdout, stderr) => (err ? reject(new Error(`devs build failed:\n${stdout}${stderr}`)) : resolve())
        )
    )
    const rec = JSON.parse(readFileSync(out, "utf8"))
    assert.equal(rec.found, true, "the hook found where this CLI reads .env settings")
    assert.equal(rec.read, true, "the CLI read settings")
    return { dir, parsed: rec.settings }
}

// The old README block: comments at the ends of lines.
const INLINE_COMMENTS = `WIFI_SSID=your-network
WIFI_PWD=your-password
IOT_HOST=192.168.1.10     # the server (required)
IOT_PORT=8123
IOT_ID=kitchen            # default: the board's device id
IOT_TIMEOUT=2000          # the same as the server's --timeout
`

describe("board settings through DeviceScript's .env parser", function () {
    this.timeout(400000)
    let check: Check
    const dirs: string[] = []

    before(async function () {
        check = (await import(pathToFileURL(join(ROOT, "tools/env-check.mjs")).href)).checkEnvFiles
    })
    after(function () {
        for (const d of dirs) rmSync(d, { recursive: true, force: true })
    })

    it("the committed .env.defaults and the docs' settings block arrive as written, every setting, and the build check is silent", async function () {
        const defaults = readFileSync(join(ROOT, ".env.defaults"), "utf8")
        const local = docsBlock()
        const { dir, parsed } = await parse({ ".env.defaults": defaults, ".env.local": local })
        dirs.push(dir)
        const localNames = new Set(settingLines(local).map(([n]) => n))
        for (const [file, text] of [[".env.defaults", defaults], [".env.local", local]] as const) {
            const lines = settingLines(text)
            assert.ok(lines.length >= 4, `${file} has settings`)
            for (const [name, value] of lines) {
                if (file === ".env.defaults" && localNames.has(name)) continue
                assert.ok(name in parsed, `${file}: ${name} reached the settings`)
                let v: unknown
                try {
                    v = JSON.parse(value)
                } catch {
                    v = value
                }
                assert.deepEqual(JSON.parse(parsed[name]!), v, `${file}: ${name} arrives as written`)
            }
        }
        for (const name of ["IOT_HOST", "IOT_PORT", "IOT_TIMEOUT", "IOT_WATCHDOG", "WIFI_SSID", "WIFI_PWD"]) assert.ok(name in parsed, `${name} present`)
        assert.deepEqual(check(dir, parsed), [])
        assert.deepEqual(parseEnvFiles(dir), parsed, "flash's model of the parser reads the files as DeviceScript did")
        assert.deepEqual(checkEnvFiles(dir), [], "and flash's check is silent too")
    })

    it("comments at the end of lines and a # in a password: the parser drops those lines, the build names each, and the documented form arrives", async function () {
        const local = 'WIFI_PWD=ab#cd\nWIFI_SSID="my\\u0023net"\nIOT_ID=1\n'
        const { dir, parsed } = await parse({ ".env.defaults": INLINE_COMMENTS, ".env.local": local })
        dirs.push(dir)
        // What DeviceScript's parser did (the failure the check exists for).
        assert.equal("IOT_HOST" in parsed, false, "IOT_HOST dropped")
        assert.equal("IOT_ID" in parsed && JSON.parse(parsed["IOT_ID"]!), 1, "IOT_ID=1 (from .env.local) arrives as the number 1")
        assert.equal(JSON.parse(parsed["WIFI_SSID"]!), "my#net", "a JSON string with \\u0023 carries a #")
        assert.equal(parsed["WIFI_PWD"], "\"your-password\"", "the password with # was dropped: the default file's one is left")
        const problems = check(dir, parsed)
        const text = problems.join("\n")
        for (const where of [".env.defaults line 3", ".env.defaults line 5", ".env.defaults line 6", ".env.local line 1"])
            assert.match(text, new RegExp(where.replace(/\./g, "\\.") + ": DeviceScript's .env parser drops every line that contains \"#\""), where)
        assert.match(text, /WIFI_PWD="ab\\u0023cd"/, "the fix for the password is spelled out")
        assert.equal(problems.length, 4, text)
        assert.deepEqual(parseEnvFiles(dir), parsed, "flash's model of the parser reads the files as DeviceScript did")
        assert.deepEqual(checkEnvFiles(dir), problems, "and flash names the same lines, the same way")
    })
})
