// The tables a run prints and docs/benchmarks.md carries: Markdown, one per section.

export interface Table {
    title: string
    head: string[]
    rows: string[][]
    notes?: string[]
}

export function markdown(t: Table): string {
    const right = t.head.map((_, i) => i > 0)
    const line = (cells: string[]) => `| ${cells.join(" | ")} |`
    const out = [`**${t.title}**`, "", line(t.head), line(right.map((r) => (r ? "---:" : "---")))]
    for (const r of t.rows) out.push(line(r))
    for (const n of t.notes ?? []) out.push("", n)
    return out.join("\n")
}

// Figures: ms with two decimals below 10, whole numbers with separators above.
export function ms(x: number): string {
    if (!Number.isFinite(x)) return "n/a"
    return x < 10 ? x.toFixed(x < 1 ? 3 : 2) : Math.round(x).toLocaleString("en-US")
}

export function int(x: number): string {
    return Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "n/a"
}

// KB of 1,000 bytes, as the firmware figures in docs/benchmarks.md.
export function kb(bytes: number): string {
    return Number.isFinite(bytes) ? `${(bytes / 1000).toFixed(1)} KB` : "n/a"
}

// "yes" / "**no**" against a target, or "" when there is none.
export function met(ok: boolean | undefined): string {
    return ok === undefined ? "" : ok ? "yes" : "**no**"
}
