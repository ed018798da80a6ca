// The whole-number rule every numeric setting and field shares, written
// once: a number with no fraction within [min, max] (NaN fails
// Math.floor(v) === v).
export function isWhole(v: unknown, min: number, max: number): boolean {
    return typeof v === "number" && Math.floor(v) === v && v >= min && v <= max
}

// What a refused whole number is told.
export function wholeRange(min: number, max: number): string {
    return "must be a whole number from " + min + " to " + max
}
