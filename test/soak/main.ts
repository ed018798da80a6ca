// npm run soak -- --faults N [--minutes M] [--nodes K] [--boards K] ...
// Random faults of every kind on continuous two-way traffic between a server
// process, Node client processes and boards in the simulator. Runs until N
// faults were injected and M minutes have passed, then checks every qos line
// was read exactly once. Exit 1 when a line was lost, duplicated or out of
// order (with --state: or read again by a restarted receiver); 2 on a bad flag.
//
// npm run soak -- --kills N: N process kills (SIGKILL of the server, or of a
// Node client, at random points under load), every Node end keeping its
// delivery state on disk (--state), no boards unless --boards is given.
import { writeFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { parseArgs } from "node:util"
import { check, failures, median, type Tally } from "./checker.js"
import { FAULT_KINDS, Soak, seeded, type FaultKind } from "./harness.js"

const HELP = `usage: npm run soak -- [options]
  --faults N      faults to inject (default 100)
  --kills N       only process kills (server-kill, client-restart), N of them, with --state (boards default 0)
  --state         every Node end keeps its delivery state on disk (a temporary folder): a restarted
                  receiver reading a line again counts as a failure
  --state-sync    with --state: fsync before each ACK
  --batch         Node ends read with readlines() (a batch per step) instead of readline()
  --minutes M     and run at least this long (default 0)
  --nodes K       Node client processes (default 2)
  --boards K      boards in the simulator (default 2)
  --v1 K          original micropython-iot boards, the compatibility peer (default 0)
  --timeout MS    every end's link timeout (default 2000)
  --interval MS   between lines of each stream, per end (default 100)
  --kinds LIST    comma-separated fault kinds (default all: ${FAULT_KINDS.join(",")})
  --seed S        fault sequence seed (default: random, printed)
  --json FILE     where to write the report as JSON (default results/soak/<date>-seed<S>.json)
  --records FILE  also write every end's log, one JSON record a line`

function int(name: string, v: string | undefined, dflt: number, min: number, max: number): number {
    if (v === undefined) return dflt
    const n = Number(v)
    if (!Number.isInteger(n) || n < min || n > max) {
        console.error(`soak: --${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(v)}`)
        process.exit(2)
    }
    return n
}

function line(name: string, t: Tally, qos: boolean): string {
    const dup = qos ? `duplicated ${t.duplicated} (+${t.crashDuplicated} read again by a restarted receiver)` : `duplicated ${t.duplicated}`
    const extra = qos ? `, out of order ${t.outOfOrder}` : ""
    const crash = qos && t.lostInCrash > 0 ? ` (${t.lostInCrash} of them within 1 s of a kill of the receiver)` : ""
    const taken = qos && t.takenByKilled > 0 ? `, taken by a receiver killed before its code logged them ${t.takenByKilled}` : ""
    // Lines of a writer killed before its write completed are delivered but not counted as sent.
    const unconfirmed = t.unconfirmed > 0 ? ` (${t.unconfirmed} of them written by a writer that did not see its write complete: killed, or still waiting)` : ""
    return `${name}: sent ${t.sent}, delivered ${t.delivered}${unconfirmed}, lost ${t.lost}${crash}${taken}, ${dup}${extra}`
}

async function main(): Promise<number> {
    let a
    try {
        a = parseArgs({
            options: {
                faults: { type: "string" },
                kills: { type: "string" },
                state: { type: "boolean" },
                "state-sync": { type: "boolean" },
                batch: { type: "boolean" },
                minutes: { type: "string" },
                nodes: { type: "string" },
                boards: { type: "string" },
                v1: { type: "string" },
                timeout: { type: "string" },
                interval: { type: "string" },
                kinds: { type: "string" },
                seed: { type: "string" },
                json: { type: "string" },
                records: { type: "string" },
                help: { type: "boolean" },
            },
        }).values
    } catch (e) {
        console.error(`soak: ${(e as Error).message}\n${HELP}`)
        return 2
    }
    if (a.help) return (console.log(HELP), 0)
    const kills = a.kills === undefined ? undefined : int("kills", a.kills, 0, 1, 1000000)
    const faults = kills ?? int("faults", a.faults, 100, 0, 1000000)
    const durable = a.state === true || kills !== undefined
    if (a["state-sync"] && !durable) return (console.error("soak: --state-sync needs --state (or --kills)"), 2)
    const minutes = int("minutes", a.minutes, 0, 0, 100000)
    const nodes = int("nodes", a.nodes, 2, 0, 100)
    const boards = int("boards", a.boards, kills !== undefined ? 0 : 2, 0, 8)
    const v1 = int("v1", a.v1, 0, 0, 100)
    const timeout = int("timeout", a.timeout, 2000, 200, 60000)
    const interval = int("interval", a.interval, 100, 10, 60000)
    const seed = int("seed", a.seed, Math.floor(Math.random() * 1e9), 0, 2 ** 32 - 1)
    const kinds = (a.kinds ?? (kills !== undefined ? "server-kill,client-restart" : FAULT_KINDS.join(","))).split(",") as FaultKind[]
    for (const k of kinds) if (!FAULT_KINDS.includes(k)) return (console.error(`soak: unknown fault kind ${JSON.stringify(k)} in --kinds (known: ${FAULT_KINDS.join(", ")})`), 2)
    if (nodes + boards + v1 === 0) return (console.error("soak: --nodes, --boards and --v1 are all 0: nothing to soak"), 2)

    const t0 = Date.now()
    const say = (s: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(7)} s] ${s}`)
    const stateDir = durable ? mkdtempSync(join(tmpdir(), "devs-iot-soak-state-")) : undefined
    say(`soak: ${faults} faults (${kinds.join(",")}), ${nodes} Node clients, ${boards} boards, ${v1} v1 boards, timeout ${timeout} ms, interval ${interval} ms, seed ${seed}${durable ? `, delivery state on disk${a["state-sync"] ? " (fsync)" : ""}` : ""}${a.batch ? ", batch reads" : ""}`)
    const soak = new Soak({ nodes, boards, v1, timeout, interval, log: say, stateDir, stateSync: a["state-sync"] === true, batch: a.batch === true })
    const rnd = seeded(seed)
    const recovery = new Map<FaultKind, number[]>()
    const unrecovered: string[] = []
    let injected = 0
    try {
        await soak.start()
        say(`all ${nodes + boards + v1} clients up`)
        while (injected < faults || Date.now() - t0 < minutes * 60000) {
            await new Promise((r) => setTimeout(r, 300 + 1700 * rnd()))
            const kind = kinds[Math.floor(rnd() * kinds.length)]!
            const ids = soak.ids()
            const target = kind === "server-kill" ? "all" : ids[Math.floor(rnd() * ids.length)]!
            const f = await soak.inject(kind, target, rnd)
            injected++
            for (const c of target === "all" ? ids : [target]) {
                try {
                    await soak.recovered(c, f.cleared, 60000)
                    const ms = soak.firstDelivery(c, f.cleared)! - f.cleared
                    recovery.set(kind, [...(recovery.get(kind) ?? []), ms])
                } catch {
                    unrecovered.push(`${kind} on ${c} at ${((f.cleared - t0) / 1000).toFixed(1)} s`)
                    say(`NOT RECOVERED within 60 s: ${kind} on ${c}`)
                }
            }
        }
        say("stopping the writers; waiting for every pending write")
        const done = await soak.stop()
        if (!done) unrecovered.push("not every end finished its pending writes within 60 s")
    } finally {
        await soak.close()
        if (stateDir) rmSync(stateDir, { recursive: true, force: true })
    }

    const r = check(soak.records, new Set(soak.ids().filter((id) => soak.kindOf(id) === "v1")))
    const out: string[] = []
    out.push("", `soak report: ${injected} faults in ${((Date.now() - t0) / 60000).toFixed(1)} min, seed ${seed}`)
    const perKind = FAULT_KINDS.map((k) => [k, soak.faults.filter((f) => f.kind === k).length] as const).filter(([, n]) => n > 0)
    out.push(line("no-qos clients -> server", r.noQos.up, false), line("no-qos server -> clients", r.noQos.down, false))
    if (r.bad > 0) out.push(`lines read that no end wrote: ${r.bad}`)
    if (r.staleSeen > 0) out.push(`ids a restarted end held as seen that no life took since the peer last sent them: ${r.staleSeen} (${r.examples.staleSeen.slice(0, 5).join("; ")})`)
    for (const u of unrecovered) out.push(`not recovered: ${u}`)
    // The end, in the order readers look for it: qos per direction, faults per kind, recovery per kind.
    out.push(line("qos clients -> server", r.qos.up, true), line("qos server -> clients", r.qos.down, true))
    if (v1 > 0) {
        out.push(line("v1 boards: qos boards -> server", r.v1.qos.up, true), line("v1 boards: qos server -> boards", r.v1.qos.down, true))
        out.push(line("v1 boards: no-qos boards -> server", r.v1.noQos.up, false), line("v1 boards: no-qos server -> boards", r.v1.noQos.down, false))
    }
    out.push(`faults: ${perKind.map(([k, n]) => `${k} ${n}`).join(", ")}`)
    out.push("recovery, fault cleared -> next line read (ms):")
    for (const [k, xs] of recovery) out.push(`  ${k.padEnd(15)} median ${String(median(xs)).padStart(5)}  max ${String(Math.max(...xs)).padStart(5)}  (${xs.length})`)
    console.log(out.join("\n"))
    if (a.records) writeFileSync(a.records, soak.records.map((x) => JSON.stringify(x)).join("\n") + "\n")
    {
        const rec = Object.fromEntries([...recovery].map(([k, xs]) => [k, { n: xs.length, median: median(xs), max: Math.max(...xs) }]))
        const file = a.json ?? `results/soak/${new Date().toISOString().slice(0, 10)}-seed${seed}.json`
        mkdirSync(dirname(file), { recursive: true })
        console.log(`report written to ${file}`)
        writeFileSync(file, JSON.stringify({ seed, faults: soak.faults, recovery: rec, unrecovered, report: r, failures: failures(r, durable), options: { nodes, boards, v1, timeout, interval, kinds, state: durable, stateSync: a["state-sync"] === true, batch: a.batch === true } }, null, 2) + "\n")
    }
    return failures(r, durable) > 0 || unrecovered.length > 0 ? 1 : 0
}

main().then(
    (code) => process.exit(code),
    (e) => {
        console.error(`soak: ${(e as Error).stack ?? e}`)
        process.exit(1)
    }
)
