// The cost of the delivery state (--state): qos throughput of one link with
// both ends keeping it in memory (the default), on disk safe against a
// process crash (LMDB without fsync), and on disk safe against power loss
// (--state-sync: fsync before each ACK, batched); and the disk a held id
// takes in the state folder.
import { mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startWorker, withWorkers } from "../lib/proc.js"
import type { Context, SectionResult } from "../lib/context.js"
import type { SendMode } from "../workers/ops.js"
import { int, met } from "../lib/table.js"
import { measure, type Rate } from "./throughput.js"
import { DiskState } from "../../src/server/state.js"
import { ServerLink, nodeDefaults, resolveConfig, useStore } from "../../src/shared/index.js"

interface Store {
    key: string
    label: string
    state: boolean
    sync: boolean
}

const STORES: Store[] = [
    { key: "memory", label: "in memory (default)", state: false, sync: false },
    { key: "disk", label: "--state (crash-safe)", state: true, sync: false },
    { key: "sync", label: "--state --state-sync (power-loss-safe)", state: true, sync: true },
]

// `batch`: the receiver reads with readlines() (one commit per batch it
// takes) instead of one line per step (for await: one commit per line).
const MODES: Array<{ key: string; label: string; mode: SendMode; n: number; target: number; batch: boolean }> = [
    { key: "wait", label: "qos, wait=true", mode: { qos: true, wait: true, inflight: 1 }, n: 20000, target: 5000, batch: false },
    { key: "nowait64", label: "qos, wait=false, 64 in flight, read per line", mode: { qos: true, wait: false, inflight: 64 }, n: 200000, target: 50000, batch: false },
    { key: "nowait64batch", label: "qos, wait=false, 64 in flight, read in batches (readlines)", mode: { qos: true, wait: false, inflight: 64 }, n: 200000, target: 50000, batch: true },
]

export interface StateData {
    rates: Record<string, Record<string, { clientToServer: Rate; serverToClient: Rate }>>
    disk: { ids: number; bytes: number; perId: number; owedLines: number; perOwedLine: number }
}

// Disk use of `ids` ids, each with its link record (the state of an id that
// exchanged lines), and then one owed 32-byte line each: blocks in use.
function diskPerId(ids: number): Promise<StateData["disk"]> {
    return (async () => {
        const dir = mkdtempSync(join(tmpdir(), "devs-iot-bench-state-"))
        try {
            const used = () => statSync(join(dir, "data.mdb")).blocks * 512
            let st = await DiskState.open(dir)
            const cfg = resolveConfig({}, nodeDefaults())
            for (let i = 0; i < ids; i++) {
                const l = new ServerLink(cfg, "e" + i)
                useStore(l, st.forId(`board-${i}`), undefined)
                l.write("first", true, false) // records the link; its line is dropped below
            }
            st.commit()
            for (let i = 0; i < ids; i++) st.forId(`board-${i}`).dropOwed(0)
            st.close() // a checkpoint: everything in LMDB
            const bytes = used()
            st = await DiskState.open(dir)
            for (let i = 0; i < ids; i++) st.forId(`board-${i}`).putOwed({ key: 1, seq: -1, wait: false, payload: Buffer.from("x".repeat(32)) })
            st.close()
            const withLines = used()
            return { ids, bytes, perId: bytes / ids, owedLines: ids, perOwedLine: (withLines - bytes) / ids }
        } finally {
            rmSync(dir, { recursive: true, force: true })
        }
    })()
}

export async function state(ctx: Context): Promise<SectionResult> {
    const scale = ctx.quick ? 0.1 : 1
    const rates: StateData["rates"] = {}
    for (const s of STORES) {
        const dir = s.state ? mkdtempSync(join(tmpdir(), "devs-iot-bench-state-")) : undefined
        try {
            rates[s.key] = await withWorkers(async (keep) => {
                const server = keep(await startWorker("server", 900000))
                const client = keep(await startWorker("client", 900000))
                const opt = (who: string) => (dir ? { state: join(dir, who), stateSync: s.sync } : {})
                const { port } = await server.call<{ port: number }>("listen", opt("server"))
                await client.call("connect", { id: "st", port, ...opt("client") })
                await server.call("waitFor", { id: "st" })
                await measure(client, server, "st", 5000, MODES[1]!.mode, false) // JIT warm-up
                await measure(server, client, "st", 5000, MODES[1]!.mode, true)
                const out: Record<string, { clientToServer: Rate; serverToClient: Rate }> = {}
                for (const m of MODES) {
                    const n = Math.round((m.n * scale) / (s.sync ? 5 : 1)) // fsync: a fifth, or the run takes minutes
                    ctx.log(`state: ${s.label}, ${m.label}, ${n} lines each way`)
                    out[m.key] = { clientToServer: await measure(client, server, "st", n, m.mode, false, m.batch), serverToClient: await measure(server, client, "st", n, m.mode, true, m.batch) }
                }
                return out
            })
        } finally {
            if (dir) rmSync(dir, { recursive: true, force: true })
        }
    }
    const ids = ctx.quick ? 2000 : 20000
    ctx.log(`state: disk use of ${ids} held ids`)
    const disk = await diskPerId(ids)
    const rows: string[][] = []
    for (const m of MODES)
        for (const s of STORES) {
            const r = rates[s.key]![m.key]!
            const a = r.clientToServer.perSec
            const b = r.serverToClient.perSec
            const targeted = s.key === "disk"
            rows.push([`${m.label}, ${s.label}`, int(a), int(b), targeted ? `>= ${int(m.target)}` : "", targeted ? met(Math.min(a, b) >= m.target) : ""])
        }
    return {
        name: "state",
        data: { rates, disk } satisfies StateData,
        tables: [
            {
                title: "Delivery state: one link's qos throughput with both ends keeping it (lines/s of 32 bytes, first write to last line read)",
                head: ["write mode, where the state lives", "client -> server", "server -> client", "target", "met"],
                rows,
            },
            {
                title: "Delivery state on disk (LMDB): space in use",
                head: ["what", "bytes"],
                rows: [
                    [`per held id (${int(ids)} ids, each with its link record)`, int(disk.perId)],
                    ["per owed 32-byte line (one per id, on top)", int(disk.perOwedLine)],
                ],
            },
        ],
    }
}
