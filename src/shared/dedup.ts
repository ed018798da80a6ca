// The receiver's set of seen message ids (docs/protocol.md, "De-duplication").
//
// 256 bits, as v1. Marking id m also clears the byte 16 bytes (128 ids) ahead
// of m's byte, so ids become new again after the sender's sequence wraps.
// Which "00" clears the set is the link's decision (fault 1), not this class's.

export class SeenIds {
    // Not private: the delivery state's records (records.ts) save and load them.
    bits: number[] = []
    newest = -1 // byte of the newest id marked; -1: none since clear()

    constructor() {
        this.clear()
    }

    clear(): void {
        const b: number[] = []
        for (let i = 0; i < 32; i++) b.push(0)
        this.bits = b
        this.newest = -1
    }

    has(id: number): boolean {
        return (this.bits[id >> 3] & (1 << (id & 7))) !== 0
    }

    mark(id: number): void {
        const i = id >> 3
        this.bits[i] = this.bits[i] | (1 << (id & 7))
        const step = this.newest < 0 ? 0 : (i - this.newest) & 31
        if (step > 0 && step < 16) {
            for (let k = 1; k <= step; k++) this.bits[(this.newest + k + 16) & 31] = 0
            this.newest = i
            return
        }
        // Same byte, or an older id resent: v1's rule.
        this.bits[(i + 16) & 31] = 0
        if (this.newest < 0) this.newest = i
    }
}
