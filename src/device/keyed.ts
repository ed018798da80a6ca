// Authentication and encryption for the board's client. Only an entry that
// imports this file compiles them in (the handshake, sealing and the crypto
// library take several KB of bytecode): the images tools/build-devs.mjs
// builds when IOT_KEY is set, src/main*.ts (what VS Code deploys, whatever
// the settings) and the simulator's images with a key.
import { linkAuth, LinkAuth } from "../shared/index.js"
import { boardCrypto } from "./crypto.js"

export function boardKeys(key: Buffer, encrypt: boolean): LinkAuth {
    return linkAuth(boardCrypto, key, encrypt)
}
