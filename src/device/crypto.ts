// The crypto primitives of src/shared/crypto.ts on the board: the runtime's
// native HMAC-SHA256, HKDF-SHA256, AES-256-CCM, and the one random source
// the board uses everywhere (random.ts: the hardware RNG; the same bytes as
// node:crypto for the rest; the shared auth cases check both).
import { decrypt, encrypt, hmac, sha256Hkdf } from "@devicescript/crypto"
import type { Crypto } from "../shared/crypto.js"
import { randomBytes } from "./random.js"

export const boardCrypto: Crypto = {
    hmac: function (key: Buffer, data: Buffer): Buffer {
        return hmac(key, "sha256", data)
    },
    hkdf: function (key: Buffer, salt: Buffer, info: Buffer): Buffer {
        return sha256Hkdf(key, info, salt)
    },
    encrypt: function (key: Buffer, nonce: Buffer, data: Buffer): Buffer {
        return encrypt({ data: data, algo: "aes-256-ccm", key: key, iv: nonce, tagLength: 16 })
    },
    decrypt: function (key: Buffer, nonce: Buffer, data: Buffer): Buffer | undefined {
        if (data.length < 16) return undefined
        try {
            const r = decrypt({ data: data, algo: "aes-256-ccm", key: key, iv: nonce, tagLength: 16 })
            if (r == null) return undefined
            return r
        } catch (e) {
            return undefined
        }
    },
    random: randomBytes,
}
