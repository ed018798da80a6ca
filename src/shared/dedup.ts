// The receiver's set of seen message ids (PROTOCOL.md, "De-duplication").
//
// 256 bits, as v1. Marking id m also clears the byte 16 bytes (128 ids) ahead
// of m's byte, so ids become new again after the sender's sequence wraps.
// Which "00" clears the set is the link's decision (fault 1), not this class's.

export class SeenIds {
    private bits: number[] = []

    constructor() {
        this.clear()
    }

    clear(): void {
        const b: number[] = []
        for (let i = 0; i < 32; i++) b.push(0)
        this.bits = b
    }

    has(id: number): boolean {
        return (this.bits[id >> 3] & (1 << (id & 7))) !== 0
    }

    mark(id: number): void {
        const i = id >> 3
        this.bits[i] = this.bits[i] | (1 << (id & 7))
        this.bits[(i + 16) & 31] = 0
    }
}
