// The line every benchmark sends: 32 bytes, like a sensor reading. Lines
// starting with "{" or "probe" are control lines (board results, recovery
// probes) and never payload.
export const PAYLOAD = "t=21.50 h=40.10 p=1013.25 n=0001"

export function isControl(line: string): boolean {
    return line.startsWith("{") || line.startsWith("probe")
}
