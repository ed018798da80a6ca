// The keyed client's side of the handshake (answer, check the server's
// proof, derive the session that seals every line), behind a small
// interface the Link calls. The Link does not import it: linkAuth() puts it
// in the LinkAuth, so a board built without a key compiles none of the
// handshake, the sealing or the crypto (DeviceScript compiles only what is
// reachable from the entry; docs/benchmarks.md, "Board bytecode").
import { answerLine, deriveSession, newNonce, proof, proofOk, Transcript, validNonce } from "./auth.js"
import { helloField } from "./hello.js"
import type { Line } from "./codec.js"
import type { Crypto } from "./crypto.js"
import type { ClientLink, ClientSocket, KeyedSteps, LinkAuth } from "./clientlink.js"
import { parseMax } from "./limits.js"
import { parseRekey } from "./rekey.js"

// A client's LinkAuth: with a key it authenticates (and refuses a server
// that does not); without one it answers a challenge plain.
export function linkAuth(crypto: Crypto, key: Buffer | undefined, encrypt: boolean): LinkAuth {
    return { crypto: crypto, key: key, encrypt: encrypt, steps: key !== undefined ? keyedSteps() : undefined }
}

function keyedSteps(): KeyedSteps {
    return {
        answer: function (a: LinkAuth, link: ClientLink, c: ClientSocket, text: string, epoch: string | undefined, now: number): void {
            // A server (or someone in between) that does not challenge is refused.
            const ns = epoch !== undefined && epoch !== "" ? helloField(text, "auth") : ""
            if (!validNonce(ns)) {
                link.authFail(now, "the server did not ask this keyed client to authenticate")
                return
            }
            c.ns = ns
            c.nc = newNonce(a.crypto)
            c.es = epoch as string
            c.ms = helloField(text, "max")
            c.peer = "devs-iot"
            c.out += answerLine(link.epoch, c.nc, proof(a.crypto, a.key as Buffer, "client", transcript(link, c)), link.cfg.maxLineBytes)
            c.phase = "auth" // its max= is learnt once the server's proof covers it
        },
        proof: function (a: LinkAuth, link: ClientLink, c: ClientSocket, l: Line, now: number): void {
            if (l.kind === "keepalive") return
            const t = transcript(link, c)
            if (l.kind !== "ext" || l.text.indexOf("!auth ") !== 0 || !proofOk(a.crypto, a.key as Buffer, "server", t, helloField(l.text, "mac"))) {
                link.authFail(now, "wrong key: the server's proof does not verify")
                return
            }
            // A server whose key file says this id must encrypt asks for it.
            c.session = deriveSession(a.crypto, a.key as Buffer, "client", t, a.encrypt || helloField(l.text, "enc") === "1")
            link.learnMax(c.ms === "" ? -1 : parseMax(" max=" + c.ms))
            c.pre = c.out
            c.out = ""
            link.peerStarted(c, c.es)
            link.goUp(c)
        },
        rekey: function (a: LinkAuth, link: ClientLink, c: ClientSocket, text: string): void {
            if (c.session === undefined || c.phase !== "up" || text.indexOf("!rekey ") !== 0 || !c.secret) {
                link.dropKeyLine(undefined)
                return
            }
            const k = parseRekey(a.crypto, link.clientId, text)
            if (typeof k === "string") link.dropKeyLine(k)
            else link.events.push({ type: "rekey", key: k, kcv: helloField(text, "kcv") })
        },
    }
}

// The key of a "rekey" event is stored: tells the server (false, and
// nothing sent, when the link is not up and sealed).
export function confirmKey(link: ClientLink, kcv: string): boolean {
    const c = link.conn
    if (c === undefined || c.session === undefined || !link.status()) return false
    c.out += "!rekeyed kcv=" + kcv + "\n" // rekey.ts's confirmation, written out: a function for it costs the keyed image 64 bytes
    return true
}

// What both proofs cover (auth.ts): this socket's nonces, epochs and limits.
function transcript(link: ClientLink, c: ClientSocket): Transcript {
    return { id: link.clientId, ns: c.ns, nc: c.nc, es: c.es, ec: link.epoch, ms: c.ms, mc: "" + link.cfg.maxLineBytes }
}
