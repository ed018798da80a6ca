// The keyed client's side of the handshake (answer, check the server's
// proof, derive the session that seals every line), behind a small
// interface the Link calls. The Link does not import it: linkAuth() puts it
// in the LinkAuth, so a board built without a key compiles none of the
// handshake, the sealing or the crypto (DeviceScript compiles only what is
// reachable from the entry; docs/board.md, "Firmware size").
import { answerLine, deriveSession, helloField, newNonce, proof, proofOk, Transcript } from "./auth.js"
import type { Line } from "./codec.js"
import type { Crypto } from "./crypto.js"
import type { KeyedSteps, LinkAuth } from "./clientlink.js"
import type { Session } from "./seal.js"
import { parseRekey } from "./rekey.js"

// A client's LinkAuth: with a key it authenticates (and refuses a server
// that does not); without one it answers a challenge plain.
export function linkAuth(crypto: Crypto, key: Buffer | undefined, encrypt: boolean): LinkAuth {
    return { crypto: crypto, key: key, encrypt: encrypt, steps: key !== undefined ? keyedSteps() : undefined }
}

function keyedSteps(): KeyedSteps {
    return {
        nonce: function (a: LinkAuth): string {
            return newNonce(a.crypto)
        },
        answer: function (a: LinkAuth, epoch: string, nc: string, t: Transcript, max: number): string {
            return answerLine(epoch, nc, proof(a.crypto, a.key as Buffer, "client", t), max)
        },
        proof: function (a: LinkAuth, t: Transcript, l: Line): Session | undefined {
            if (l.kind !== "ext" || l.text.indexOf("!auth ") !== 0 || !proofOk(a.crypto, a.key as Buffer, "server", t, helloField(l.text, "mac"))) return undefined
            // A server whose key file says this id must encrypt asks for it.
            return deriveSession(a.crypto, a.key as Buffer, "client", t, a.encrypt || helloField(l.text, "enc") === "1")
        },
        rekey: function (a: LinkAuth, id: string, text: string): Buffer | string {
            return parseRekey(a.crypto, id, text)
        },
    }
}
