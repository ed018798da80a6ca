// A FIFO with O(1) amortised shift. DeviceScript's Array.shift moves every
// element, and it has no splice.

export class Fifo<T> {
    private items: T[] = []
    private head = 0

    size(): number {
        return this.items.length - this.head
    }

    push(x: T): void {
        this.items.push(x)
    }

    // An index past the end reads undefined, on both runtimes.
    peek(): T | undefined {
        return this.items[this.head]
    }

    at(i: number): T {
        return this.items[this.head + i]
    }

    shift(): T | undefined {
        if (this.head >= this.items.length) return undefined
        const x = this.items[this.head]
        this.head++
        if (this.head >= this.items.length) {
            this.items = []
            this.head = 0
        } else if (this.head >= 32 && this.head * 2 >= this.items.length) {
            this.items = this.items.slice(this.head)
            this.head = 0
        }
        return x
    }

    // Keeps the items for which keep() is true, in order.
    retain(keep: (x: T) => boolean): void {
        const out: T[] = []
        for (let i = this.head; i < this.items.length; i++) if (keep(this.items[i])) out.push(this.items[i])
        this.items = out
        this.head = 0
    }
}
