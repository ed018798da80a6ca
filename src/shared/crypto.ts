// The crypto primitives the authentication code needs, passed in by the
// platform: node:crypto on Node (src/server/nodecrypto.ts), the runtime's
// native primitives on the board (src/device/crypto.ts). Both give the same
// bytes for the same inputs.

export interface Crypto {
    // HMAC-SHA256: 32 bytes.
    hmac(key: Buffer, data: Buffer): Buffer
    // HKDF-SHA256 (RFC 5869), 32 bytes of output.
    hkdf(key: Buffer, salt: Buffer, info: Buffer): Buffer
    // AES-256-CCM with a 13-byte nonce: the cipher text with a 16-byte tag appended.
    encrypt(key: Buffer, nonce: Buffer, data: Buffer): Buffer
    // The plain text, or undefined when the tag does not verify.
    decrypt(key: Buffer, nonce: Buffer, data: Buffer): Buffer | undefined
    // Cryptographically strong random bytes.
    random(n: number): Buffer
}

// Equal contents, in time that depends only on the lengths.
export function sameBytes(a: Buffer, b: Buffer): boolean {
    if (a.length !== b.length) return false
    let d = 0
    for (let i = 0; i < a.length; i++) d = d | (a[i] ^ b[i])
    return d === 0
}

// Lowercase hex of exactly `n` characters, as sent on the wire.
export function isHex(s: string, n: number): boolean {
    if (s.length !== n) return false
    for (let i = 0; i < n; i++) if ("0123456789abcdef".indexOf(s.charAt(i)) < 0) return false
    return true
}
