// npm run attack -- [--seconds S] [--attackers K] [--slots N] [--quick] [--json FILE]
// The live attack run: the real server process (the soak's server,
// with default limits), Node client processes and a board in the simulator
// exchanging qos traffic through the soak harness, a probe client in this
// process timing qos round trips, and attacker processes (attacker.ts) making
// hostile connections from 127.0.0.2 and up. It reports what the attackers
// sent, qos lines lost (the soak checker), server crashes, the server's RSS
// and CPU, the honest round trips before, during and after the attack, and
// how many warning lines the server logged. Every process is stopped by pid;
// loopback only. Exit 1 when a qos line was lost, duplicated or out of order,
// the server crashed, or an end did not finish; 2 on a bad flag.
import { spawn, type ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { Client } from "../../src/server/index.js"
import { check, failures, type Tally } from "../soak/checker.js"
import { Soak } from "../soak/harness.js"

const HERE = dirname(fileURLToPath(import.meta.url))
const ATTACKER = join(HERE, "attacker.js")

const HELP = `usage: npm run attack -- [options]
  --seconds S     attack duration (default 60)
  --attackers K   attacker processes, 8 source addresses each (default 4)
  --slots N       concurrent connections per kind per attacker (slowloris: 4 x N; default 8)
  --nodes K       Node client processes with soak traffic (default 2)
  --boards K      boards in the simulator (default 1)
  --quick         a short run: 10 s of attack, no board, 1 Node client
  --json FILE     where to write the report as JSON (default results/soak/<date>-attack-<S>s.json)`

interface Counts {
    connections: number
    lines: number
    bytes: number
    cut: number
    errors: number
    byKind: Record<string, number>
    final?: boolean
}

type Phase = "before" | "attack" | "after"

function int(name: string, v: string | undefined, dflt: number, min: number, max: number): number {
    if (v === undefined) return dflt
    const n = Number(v)
    if (!Number.isInteger(n) || n < min || n > max) {
        console.error(`attack: --${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(v)}`)
        process.exit(2)
    }
    return n
}

function pct(xs: number[], p: number): number {
    if (xs.length === 0) return NaN
    const s = [...xs].sort((a, b) => a - b)
    return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))]!
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

function rssMB(pid: number): number | undefined {
    try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf-8"))
        return m ? Number(m[1]) / 1024 : undefined
    } catch {
        return undefined
    }
}

function cpuTicks(pid: number): number | undefined {
    try {
        const f = readFileSync(`/proc/${pid}/stat`, "utf-8")
        const rest = f.slice(f.lastIndexOf(")") + 2).split(" ")
        return Number(rest[11]) + Number(rest[12]) // utime + stime, in clock ticks (100/s)
    } catch {
        return undefined
    }
}

async function main(): Promise<number> {
    let a
    try {
        a = parseArgs({
            options: {
                seconds: { type: "string" },
                attackers: { type: "string" },
                slots: { type: "string" },
                nodes: { type: "string" },
                boards: { type: "string" },
                quick: { type: "boolean" },
                json: { type: "string" },
                help: { type: "boolean" },
            },
        }).values
    } catch (e) {
        console.error(`attack: ${(e as Error).message}\n${HELP}`)
        return 2
    }
    if (a.help) return (console.log(HELP), 0)
    const quick = a.quick === true
    const seconds = int("seconds", a.seconds, quick ? 10 : 60, 1, 3600)
    const attackers = int("attackers", a.attackers, quick ? 2 : 4, 1, 30)
    const slots = int("slots", a.slots, quick ? 4 : 8, 1, 200)
    const nodes = int("nodes", a.nodes, quick ? 1 : 2, 0, 20)
    const boards = int("boards", a.boards, quick ? 0 : 1, 0, 4)
    const calm = quick ? 3000 : 10000 // ms before and after the attack

    const t0 = Date.now()
    const say = (s: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${s}`)
    say(`attack run: ${attackers} attackers x 8 addresses, ${seconds} s, slots ${slots}; ${nodes} Node clients, ${boards} boards, a probe client`)

    // The server's warnings (JSON lines on its stderr) are counted, not printed.
    const warnLines: Record<string, number> = {}
    let warnTotal = 0
    const onLog = (s: string) => {
        if (!s.startsWith("srv: ")) return say(s)
        // pino writes each line in one write, so a pipe read holds whole lines.
        for (const l of s.slice(5).split("\n")) {
            const m = /"code":"([^"]+)"/.exec(l)
            if (m) (warnTotal++, (warnLines[m[1]!] = (warnLines[m[1]!] ?? 0) + 1))
            else if (l.trim() !== "" && !l.startsWith("{")) say(`srv: ${l}`)
        }
    }
    const soak = new Soak({ nodes, boards, timeout: 2000, interval: 100, serverArgs: ["--warn-log"], others: ["probe"], log: onLog })
    const procs = new Set<ChildProcess>()
    const killAll = () => {
        for (const p of procs) if (p.pid && p.exitCode === null && p.signalCode === null) process.kill(p.pid, "SIGKILL")
    }
    process.on("exit", killAll)
    // SIGINT/SIGTERM: exit, so the exit handlers (here and the soak
    // harness's) kill every child by pid.
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(1))

    let phase: Phase = "before"
    const rtt: Record<Phase, number[]> = { before: [], attack: [], after: [] }
    const rss: Record<Phase, Array<[number, number]>> = { before: [], attack: [], after: [] }
    const cpu: Record<Phase, { t: number; ticks: number }[]> = { before: [], attack: [], after: [] }
    const counts = new Map<number, Counts>()
    const attackerTicks = new Map<number, { first: number; last: number; t0: number; t1: number }>() // pid -> CPU ticks
    let probeDowns = 0
    let attackStart = 0
    let probeWriting = true
    let report: Record<string, unknown> = {}
    let code = 0
    let sampler: NodeJS.Timeout | undefined
    let probe: Client | undefined
    try {
        await soak.start()
        say(`server pid ${soak.serverPid()} on port ${soak.port}; ${soak.ids().join(", ")} up`)

        // The probe: qos round trips (write -> ACK) every 20 ms, logged for the checker.
        const run = randomBytes(4).readUInt32BE(0) % 1000000000
        probe = new Client({ id: "probe", port: soak.port, timeout: 2000, onStatus: (up) => void (!up && probeWriting && probeDowns++) })
        probe.start()
        await probe.connected()
        const p = probe
        const reading = (async () => {
            try {
                for await (const line of p) if (line !== "stop") soak.records.push({ t: Date.now(), who: "probe", life: 0, kind: "R", text: line })
            } catch {}
        })()
        const writing = (async () => {
            for (let n = 0; probeWriting; n++) {
                const line = `w.probe.srv.${run}.${n}`
                const start = performance.now()
                await p.write(line)
                rtt[phase].push(performance.now() - start)
                soak.records.push({ t: Date.now(), who: "probe", life: 0, kind: "S", text: line })
                await sleep(20)
            }
        })()

        sampler = setInterval(() => {
            const pid = soak.serverPid()
            if (!pid) return
            const r = rssMB(pid)
            if (r !== undefined) rss[phase].push([Date.now(), r])
            const c = cpuTicks(pid)
            if (c !== undefined) cpu[phase].push({ t: Date.now(), ticks: c })
            for (const ap of procs) {
                const k = ap.pid ? cpuTicks(ap.pid) : undefined
                if (k === undefined || ap.exitCode !== null) continue
                const x = attackerTicks.get(ap.pid!)
                if (x) (x.last = k, (x.t1 = Date.now()))
                else attackerTicks.set(ap.pid!, { first: k, last: k, t0: Date.now(), t1: Date.now() })
            }
        }, 250)

        await sleep(calm)
        phase = "attack"
        attackStart = Date.now()
        say(`attack starts`)
        const exits: Promise<void>[] = []
        for (let i = 0; i < attackers; i++) {
            const addrs = Array.from({ length: 8 }, (_, j) => `127.0.0.${2 + i * 8 + j}`)
            const child = spawn(process.execPath, [ATTACKER, "--port", String(soak.port), "--addrs", addrs.join(","), "--seconds", String(seconds), "--slots", String(slots), "--tag", `a${i}`], {
                stdio: ["ignore", "pipe", "pipe"],
            })
            procs.add(child)
            createInterface({ input: child.stdout! }).on("line", (l) => {
                if (l.startsWith("@A ")) counts.set(i, JSON.parse(l.slice(3)) as Counts)
            })
            child.stderr!.on("data", (b: Buffer) => say(`attacker ${i}: ${b.toString().trimEnd()}`))
            exits.push(new Promise((r) => child.once("exit", () => r())))
        }
        const progress = setInterval(() => {
            const tot = [...counts.values()].reduce((s, c) => ({ c: s.c + c.connections, l: s.l + c.lines }), { c: 0, l: 0 })
            const r = rss.attack.at(-1)?.[1]
            say(`attack: ${tot.c} connections, ${tot.l} lines; server RSS ${r?.toFixed(0)} MB; probe round trips ${rtt.attack.length}, p99 ${pct(rtt.attack, 0.99).toFixed(1)} ms`)
        }, 10000)
        const allExited = Promise.all(exits)
        const ok = await Promise.race([allExited.then(() => true), sleep(seconds * 1000 + 15000).then(() => false)])
        clearInterval(progress)
        if (!ok) (say("attackers did not exit in time: killed"), killAll())
        phase = "after"
        say("attack over")
        await sleep(calm)

        probeWriting = false
        await writing
        const stopAt = Date.now() // from here on the run stops every end: drops are its own doing
        say("stopping the soak writers; waiting for every pending write")
        const done = await soak.stop()
        await p.close()
        await reading
        clearInterval(sampler)

        const r = check(soak.records)
        const sum = (f: (c: Counts) => number) => [...counts.values()].reduce((s, c) => s + f(c), 0)
        const byKind: Record<string, number> = {}
        for (const c of counts.values()) for (const [k, n] of Object.entries(c.byKind)) byKind[k] = (byKind[k] ?? 0) + n
        const peak = (ph: Phase) => Math.max(...rss[ph].map(([, m]) => m))
        const half = rss.attack.length >> 1
        const firstHalf = Math.max(...rss.attack.slice(0, half).map(([, m]) => m))
        const secondHalf = Math.max(...rss.attack.slice(half).map(([, m]) => m))
        const cpuPct = (ph: Phase) => {
            const xs = cpu[ph]
            if (xs.length < 2) return NaN
            return ((xs.at(-1)!.ticks - xs[0]!.ticks) / 100 / ((xs.at(-1)!.t - xs[0]!.t) / 1000)) * 100
        }
        const attackersCpu = [...attackerTicks.values()].reduce((s, x) => s + (x.t1 > x.t0 ? ((x.last - x.first) / 100 / ((x.t1 - x.t0) / 1000)) * 100 : 0), 0)
        const honest = new Set([...soak.ids(), "probe"]) // not the attackers that came up
        const downRecs = soak.records.filter((x) => x.t < stopAt && x.kind === "I" && (x.text.startsWith("down") || (x.text.startsWith("disconnect") && honest.has(x.text.split(" ")[1]!))))
        const attackAt = attackStart
        const downList = downRecs.map((x) => `${x.who} ${x.text} at ${((x.t - attackAt) / 1000).toFixed(1)} s`)
        const downs = downRecs.filter((x) => x.text.startsWith("down")).length
        // Hostile connections whose link came up (taken for v1 clients): the soak's server sends them nothing.
        const strangers = soak.records.filter((x) => x.who === "srv" && x.kind === "I" && x.text.startsWith("stranger")).length
        const q = (t: Tally) => `sent ${t.sent}, delivered ${t.delivered}, lost ${t.lost}, duplicated ${t.duplicated}, out of order ${t.outOfOrder}`
        const rt = (ph: Phase) => `${rtt[ph].length} round trips: median ${pct(rtt[ph], 0.5).toFixed(2)} ms, p99 ${pct(rtt[ph], 0.99).toFixed(2)} ms, max ${Math.max(...rtt[ph]).toFixed(1)} ms`
        const bounded = peak("attack") < 1024 && secondHalf <= firstHalf * 1.25 + 16
        report = {
            options: { seconds, attackers, addresses: attackers * 8, slots, nodes, boards, quick },
            hostile: { connections: sum((c) => c.connections), lines: sum((c) => c.lines), bytes: sum((c) => c.bytes), connectErrors: sum((c) => c.errors), byKind, linksUp: strangers },
            qos: { up: r.qos.up, down: r.qos.down },
            noQos: { up: r.noQos.up, down: r.noQos.down },
            failures: failures(r),
            serverCrashes: soak.serverCrashes,
            everyEndDone: done,
            honestLinkDrops: { nodeClients: downs, probe: probeDowns, events: downList },
            rssMB: { before: peak("before"), attackPeak: peak("attack"), attackFirstHalfPeak: firstHalf, attackSecondHalfPeak: secondHalf, after: rss.after.at(-1)?.[1], bounded },
            serverCpuPercent: { before: cpuPct("before"), attack: cpuPct("attack"), after: cpuPct("after") },
            attackersCpuPercent: attackersCpu,
            loadAverage: readFileSync("/proc/loadavg", "utf-8").trim(),
            probeRttMs: Object.fromEntries((["before", "attack", "after"] as Phase[]).map((ph) => [ph, { n: rtt[ph].length, median: pct(rtt[ph], 0.5), p99: pct(rtt[ph], 0.99), max: Math.max(...rtt[ph]) }])),
            serverWarningLines: { total: warnTotal, byCode: warnLines },
            minutes: (Date.now() - t0) / 60000,
        }
        const h = report["hostile"] as { connections: number; lines: number; bytes: number; connectErrors: number }
        const out = [
            "",
            `attack report (${((Date.now() - t0) / 1000).toFixed(0)} s in all, ${seconds} s of attack, ${attackers * 8} source addresses)`,
            `hostile: ${h.connections} connections, ${h.lines} lines, ${(h.bytes / 1e6).toFixed(1)} MB sent (${Object.entries(byKind).map(([k, n]) => `${k} ${n}`).join(", ")}); ${h.connectErrors} connects failed; ${strangers} came up as v1 clients (no traffic)`,
            `qos clients -> server: ${q(r.qos.up)}`,
            `qos server -> clients: ${q(r.qos.down)}`,
            `no qos: up lost ${r.noQos.up.lost} of ${r.noQos.up.sent}, down lost ${r.noQos.down.lost} of ${r.noQos.down.sent}`,
            `server crashes: ${soak.serverCrashes.length}${soak.serverCrashes.length ? ` (${soak.serverCrashes.join(", ")})` : ""}; every end finished: ${done}`,
            `honest link drops: Node clients ${downs}, probe ${probeDowns}${downList.length ? ` (times from the attack's start: ${downList.join("; ")})` : ""}`,
            `server RSS: ${peak("before").toFixed(0)} MB before, peak ${peak("attack").toFixed(0)} MB during (first half ${firstHalf.toFixed(0)}, second half ${secondHalf.toFixed(0)}), ${rss.after.at(-1)?.[1].toFixed(0)} MB after: ${bounded ? "bounded" : "NOT bounded"}`,
            `server CPU (% of a core): ${cpuPct("before").toFixed(0)} before, ${cpuPct("attack").toFixed(0)} during, ${cpuPct("after").toFixed(0)} after; attacker processes ${attackersCpu.toFixed(0)} % during; load average ${readFileSync("/proc/loadavg", "utf-8").trim()}`,
            `probe qos round trip before: ${rt("before")}`,
            `probe qos round trip during: ${rt("attack")}`,
            `probe qos round trip after:  ${rt("after")}`,
            `server warning log lines: ${warnTotal} (${Object.entries(warnLines).map(([k, n]) => `${k} ${n}`).join(", ")})`,
        ]
        console.log(out.join("\n"))
        if (failures(r) > 0 || soak.serverCrashes.length > 0 || !done) code = 1
    } finally {
        if (sampler) clearInterval(sampler)
        killAll()
        await probe?.close()
        await soak.close()
    }
    {
        const file = a.json ?? `results/soak/${new Date().toISOString().slice(0, 10)}-attack${quick ? "-quick" : `-${seconds}s`}.json`
        mkdirSync(dirname(file), { recursive: true })
        writeFileSync(file, JSON.stringify(report, null, 2) + "\n")
        console.log(`report written to ${file}`)
    }
    return code
}

main().then(
    (code) => process.exit(code),
    (e) => {
        console.error(`attack: ${(e as Error).stack ?? e}`)
        process.exit(1)
    }
)
