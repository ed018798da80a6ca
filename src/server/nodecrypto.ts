// The crypto primitives of src/shared/crypto.ts on Node.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto"
import type { Crypto } from "../shared/index.js"

export const nodeCrypto: Crypto = {
    hmac: (key, data) => createHmac("sha256", key).update(data).digest(),
    hkdf: (key, salt, info) => Buffer.from(hkdfSync("sha256", key, salt, info, 32)),
    encrypt(key, nonce, data) {
        const c = createCipheriv("aes-256-ccm", key, nonce, { authTagLength: 16 })
        const body = Buffer.concat([c.update(data), c.final()])
        return Buffer.concat([body, c.getAuthTag()])
    },
    decrypt(key, nonce, data) {
        if (data.length < 16) return undefined
        try {
            const d = createDecipheriv("aes-256-ccm", key, nonce, { authTagLength: 16 })
            d.setAuthTag(data.subarray(data.length - 16))
            return Buffer.concat([d.update(data.subarray(0, data.length - 16)), d.final()])
        } catch {
            return undefined
        }
    },
    random: (n) => randomBytes(n),
}
