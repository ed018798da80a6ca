// Monotonic ms: the core compares deadlines, and budgets and back-offs
// measure time, so wall-clock jumps must not reach them.
export function clock(): number {
    return Math.floor(performance.now())
}
