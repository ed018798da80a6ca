// Summaries of timing samples (ms).

export interface Summary {
    n: number
    median: number
    p99: number
    mean: number
    max: number
}

// Nearest-rank percentile of sorted samples, p in (0, 1].
export function percentile(sorted: ArrayLike<number>, p: number): number {
    if (sorted.length === 0) return NaN
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))
    return sorted[i]!
}

export function summarize(samples: ArrayLike<number>): Summary {
    const s = Float64Array.from(samples).sort()
    let sum = 0
    for (const x of s) sum += x
    return { n: s.length, median: percentile(s, 0.5), p99: percentile(s, 0.99), mean: s.length ? sum / s.length : NaN, max: s.length ? s[s.length - 1]! : NaN }
}

// A summary from a histogram of whole-ms buckets: [ms, count] pairs.
export function summarizeHistogram(hist: Array<[number, number]>, totalMs: number): Summary {
    const sorted = [...hist].sort((a, b) => a[0] - b[0])
    const n = sorted.reduce((s, [, c]) => s + c, 0)
    const at = (p: number) => {
        const rank = Math.max(1, Math.ceil(p * n))
        let seen = 0
        for (const [ms, c] of sorted) {
            seen += c
            if (seen >= rank) return ms
        }
        return NaN
    }
    return { n, median: at(0.5), p99: at(0.99), mean: n ? totalMs / n : NaN, max: sorted.length ? sorted[sorted.length - 1]![0] : NaN }
}
