// Outgoing message ids (docs/protocol.md, "Message ids"): 00 first, then 01..ff,
// 01..; 00 is never reused because it means "I have restarted". Internally a
// sender counts a plain sequence number; this maps it to the wire id.

export function wireId(seq: number): number {
    return seq === 0 ? 0 : ((seq - 1) % 255) + 1
}

// Sequence numbers are renumbered by SEQ_SHIFT (a multiple of 255, so wire ids
// do not change) before they reach 2^31: DeviceScript's % is wrong above it.
export const SEQ_LIMIT = 1020000000
export const SEQ_SHIFT = 255 * 3990000
