// Authentication and encryption for the board's client. Only an entry that
// imports this file compiles them in (the handshake, sealing and the crypto
// library take several KB of bytecode): the images tools/build-devs.mjs
// builds when IOT_KEY is set, src/main*.ts (what VS Code deploys, whatever
// the settings) and the simulator's images with a key.
import { readSetting, writeSetting } from "@devicescript/settings"
import { ClientLink, confirmKey, isHex, linkAuth, LinkEvent, setAuth } from "../shared/index.js"
import type { BoardKeys, KeyStore } from "./client.js"
import { boardCrypto } from "./crypto.js"

// A key the server pushed, and "1" once a connect with it succeeded. Names of
// their own: a deploy rewrites IOT_KEY, and must not lose the only key the
// server accepts.
const NEXT = "IOT_KEYN"
const WORKED = "IOT_KEYNOK"

export const boardKeys: BoardKeys = { store: keyStore }

// IOT_KEYN from the next connect on. Until it has worked once, a connect
// that fails goes back to the deployed key on the connect after; once it
// has, never (a holder of the old key could otherwise force the fallback).
function keyStore(deployed: Buffer, encrypt: boolean): KeyStore {
    let next: Buffer | undefined = undefined
    let worked = false
    let loaded = false
    let back = false
    let using = deployed
    let upNow = false // the link came up on `using`, not yet recorded
    let pushed: Buffer | undefined = undefined // a key pushed, not yet kept
    let pushedKcv = ""
    // True once written and read back.
    const keep = async function (key: Buffer): Promise<boolean> {
        const hex = key.toString("hex")
        await writeSetting(WORKED, "0")
        await writeSetting(NEXT, hex)
        if ((await readSetting(NEXT, "")) !== hex) return false
        next = key
        worked = false
        return true
    }
    return {
        auth: async function (link: ClientLink): Promise<void> {
            if (!loaded) {
                loaded = true
                const n = await readSetting(NEXT, "")
                if (typeof n === "string" && isHex(n, 64)) next = Buffer.from(n, "hex")
                worked = (await readSetting(WORKED, "")) === "1"
            }
            using = next !== undefined && !back ? next : deployed
            back = false
            setAuth(link, linkAuth(boardCrypto, using, encrypt))
        },
        failed: function (): void {
            if (next !== undefined && using === next && !worked) back = true
        },
        event: function (e: LinkEvent): void {
            if (e.type === "up") upNow = true
            else if (e.type === "rekey") {
                pushed = e.key
                pushedKcv = e.kcv
            }
        },
        settle: async function (link: ClientLink): Promise<string> {
            if (upNow) {
                upNow = false
                if (next !== undefined && using === next && !worked) {
                    worked = true
                    await writeSetting(WORKED, "1")
                }
            }
            const k = pushed
            if (k === undefined) return ""
            pushed = undefined
            if (!(await keep(k))) return "key pushed by the server could not be kept (IOT_KEYN)"
            confirmKey(link, pushedKcv)
            return "key pushed by the server, kept: using it from the next connect"
        },
    }
}
