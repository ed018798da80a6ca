// Two-digit hex for message ids. DeviceScript has no toString(16) and no
// parseInt(s, 16), so both directions are table lookups.

const DIGITS = "0123456789abcdef"

export function hexByte(n: number): string {
    return DIGITS.charAt((n >> 4) & 15) + DIGITS.charAt(n & 15)
}

// Value of one ASCII hex digit (either case, as the original's int(s, 16)
// accepts), or -1.
export function hexDigit(c: number): number {
    if (c >= 48 && c <= 57) return c - 48
    if (c >= 97 && c <= 102) return c - 87
    if (c >= 65 && c <= 70) return c - 55
    return -1
}

// The message id two ASCII hex digits (char codes) spell, or -1.
export function hexId(hi: number, lo: number): number {
    const h = hexDigit(hi)
    const l = hexDigit(lo)
    return h < 0 || l < 0 ? -1 : (h << 4) | l
}

// Readable, bounded rendering of raw bytes for logs: printable ASCII as is,
// everything else as \xNN.
export function previewBytes(b: Buffer, max: number): string {
    const n = Math.min(b.length, max)
    let s = ""
    for (let i = 0; i < n; i++) {
        const c = b[i]
        if (c >= 32 && c < 127 && c !== 92) s += String.fromCharCode(c)
        else s += "\\x" + hexByte(c)
    }
    if (b.length > max) s += "...(" + b.length + " bytes)"
    return s
}
