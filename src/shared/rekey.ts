// Key push over the link (docs/security.md, "Key push over the link"): the
// server gives a board that authenticated with its id's current key the key
// file's next one, and the board confirms it has stored it:
//
//   server: !rekey key=<64 hex> kcv=<8 hex>     only as a verified "!e" line
//   client: !rekeyed kcv=<8 hex>                sealed, once the key is stored
//
// kcv: the first 4 bytes of HMAC-SHA256(new key, "devs-iot/1 kcv " + id), a
// check that the key arrived whole. Only keyed code imports this (keyed.ts,
// the server), so a board built without a key compiles none of it.
import { KEY_BYTES } from "./auth.js"
import { helloField } from "./hello.js"
import { Crypto, isHex } from "./crypto.js"

export const KCV_HEX = 8

export function kcvOf(crypto: Crypto, key: Buffer, id: string): string {
    return crypto.hmac(key, Buffer.from("devs-iot/1 kcv " + id)).slice(0, KCV_HEX / 2).toString("hex")
}

// Without "\n": the Link seals it as one line.
export function rekeyLine(crypto: Crypto, key: Buffer, id: string): string {
    return "!rekey key=" + key.toString("hex") + " kcv=" + kcvOf(crypto, key, id)
}

// The key a `!rekey` line carries for `id`, or why it is refused.
export function parseRekey(crypto: Crypto, id: string, text: string): Buffer | string {
    const hex = helloField(text, "key")
    const kcv = helloField(text, "kcv")
    if (!isHex(hex, 2 * KEY_BYTES) || !isHex(kcv, KCV_HEX)) return "bad key push line"
    const key = Buffer.from(hex, "hex")
    if (kcvOf(crypto, key, id) !== kcv) return "key push whose check value does not match"
    return key
}
