// Randomness for the board. Math.random is the same sequence at every start
// in DeviceScript's simulator (measured: its first value is always
// 0.000818352), so two starts would share an epoch and the peer would take the
// second one's messages for duplicates. Buffer.fillRandom draws from the
// runtime's entropy source (the hardware RNG on an ESP32).

// `n` random bytes (also the crypto's random source: crypto.ts).
export function randomBytes(n: number): Buffer {
    const b = Buffer.alloc(n)
    ;(b as any).fillRandom()
    return b
}

// A number in [0, 1), for jitter.
export function randomUnit(): number {
    const b = randomBytes(2)
    return (b[0] * 256 + b[1]) / 65536
}
