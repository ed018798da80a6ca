// One end of the fault soak as its own process: a devs-iot Server or a Node
// Client, with the same traffic and logs as the board's soak firmware
// (test/firmware/soak.ts): streams "w" (qos, wait), "f" (qos, no wait, up to
// 8 in flight), "n" (no qos), one line every `interval` ms each; "@S <line>"
// once a write completed, "@R <line>" per line read, "@I ..." for events.
// Logs go to stdout, which is a pipe: written at once, so a kill -9 loses none.
// With --state, also "@T sent <link> <wire id> <line>" when a qos line gets
// its id, "@T took <link> <id>..." when the application takes lines and "@T
// kept <link> <id>..." when lines are ACKed unread (kept with their payload),
// all before the record reaches the state (before its commit), and "@T held
// <link> <id>..." for the seen set a start loaded: the checker tells a line
// taken by a life killed before its code logged "@R" from a lost one, and
// finds an id held as seen that no life took since the peer last sent it.
//
//   node peer.js server --port P [--timeout T] [--interval I] [--ids X,Y] [--state DIR [--state-sync]] [--batch]
//   --ids: the soak's clients; any other id whose link comes up (an
//   attacker's, the attack run: test/attack) is logged "@I stranger <id>" and
//   gets no traffic, so its writes, pending for ever once it is gone, do not
//   keep the server from finishing. Without --ids every id gets traffic.
//   node peer.js client --id X --port P [--timeout T] [--interval I] [--state DIR [--state-sync]] [--batch]
//   --batch: read with readlines(), logging each batch with one write
//   node peer.js v1client ...   the same, as an original micropython-iot board
//                               (the compatibility peer, test/kit/v1peer.ts)
// The server stops its writers on "stop" from stdin, then sends "stop" to
// every client; a client stops on that line. Each prints "@I done" when
// nothing it wrote is pending.
import { randomBytes } from "node:crypto"
import { writeSync } from "node:fs"
import { createInterface } from "node:readline"
import { parseArgs } from "node:util"
import { Client, makeLogger, openState, Server, type Connection, type StateStore } from "../../src/server/index.js"
import { wireId } from "../../src/shared/ids.js"
import { V1Client } from "../kit/v1peer.js"

interface End {
    write(line: string, opts: { qos?: boolean; wait?: boolean }): Promise<void>
    readline(): Promise<string>
    readlines?(): Promise<string[]>
}

function log(s: string): void {
    writeSync(1, s + "\n")
}

// What one link holds, for a run that timed out waiting for its ends: its
// up/down state, writes pending, lines queued each way and its counters.
function dump(id: string, end: Connection | Client | V1Client, flow: Flow): void {
    const link = end instanceof V1Client ? { queued: end.queued } : { up: end.status(), queued: end.queued(), stats: end.stats }
    log(`@I dump ${id}: writes pending ${flow.pending}, ${JSON.stringify(link)}`)
}

const IN_FLIGHT = 8

class Flow {
    stopping = false
    pending = 0
    failed = 0
    private idle: Array<() => void> = []

    constructor(private readonly end: End, private readonly head: string, private readonly interval: number) {}

    start(): void {
        void this.stream("w", { qos: true, wait: true }, true)
        void this.stream("n", { qos: false }, true)
        void this.stream("f", { qos: true, wait: false }, false)
    }

    // Resolves once the writers stopped and nothing is pending.
    async stop(): Promise<void> {
        this.stopping = true
        if (this.pending > 0) await new Promise<void>((r) => this.idle.push(r))
    }

    private async stream(kind: string, opts: { qos: boolean; wait?: boolean }, one: boolean): Promise<void> {
        let n = 0
        while (!this.stopping) {
            const line = kind + this.head + n++
            if (one) await this.send(line, opts)
            else if (this.pending < IN_FLIGHT + 2) void this.send(line, opts)
            await new Promise((r) => setTimeout(r, this.interval))
        }
    }

    private async send(line: string, opts: { qos: boolean; wait?: boolean }): Promise<void> {
        this.pending++
        try {
            await this.end.write(line, opts)
            log("@S " + line)
        } catch {
            this.failed++
        }
        if (--this.pending === 0) for (const r of this.idle.splice(0)) r()
    }
}

// A batch (readlines()) is taken in one step, so its "@R" lines go out in
// one write: a kill leaves all of them logged or none.
async function readAll(end: End, onStop: () => void, batch: boolean): Promise<void> {
    try {
        while (true) {
            const lines = batch && end.readlines ? await end.readlines() : [await end.readline()]
            let out = ""
            for (const line of lines) {
                if (line !== "stop") out += "@R " + line + "\n"
                else {
                    if (out !== "") writeSync(1, out)
                    out = ""
                    onStop()
                }
            }
            if (out !== "") writeSync(1, out)
        }
    } catch {
        // ECLOSED
    }
}

// The state, with "@T" logs of what the core records (see the top). The ids
// newly marked in the link record's seen set were taken, or kept unread if
// a kept line with that id came with them (ACKed before the application
// took it: given to the next life if this one dies).
function tapped(st: StateStore): StateStore {
    const seen = new Map<string, number[]>()
    const has = (bits: number[], i: number) => ((bits[i >> 3]! >> (i & 7)) & 1) === 1
    return {
        where: st.where,
        durable: st.durable,
        load(id) {
            const s = st.load(id)
            if (s) {
                seen.set(id, s.link.seen)
                const held: number[] = []
                for (let i = 0; i < 256; i++) if (has(s.link.seen, i)) held.push(i)
                log(`@T held ${id} ${held.join(" ")}`)
            }
            return s
        },
        forId(id) {
            const inner = st.forId(id)
            const kept = new Set<number>()
            return {
                saveLink(r) {
                    const was = seen.get(id)
                    const took: number[] = []
                    const unread: number[] = []
                    for (let i = 0; i < 256; i++) if (has(r.seen, i) && !(was && has(was, i))) (kept.has(i) ? unread : took).push(i)
                    seen.set(id, r.seen)
                    kept.clear()
                    if (took.length > 0) log(`@T took ${id} ${took.join(" ")}`)
                    if (unread.length > 0) log(`@T kept ${id} ${unread.join(" ")}`)
                    inner.saveLink(r)
                },
                putOwed(o) {
                    if (o.seq >= 0) log(`@T sent ${id} ${wireId(o.seq)} ${o.payload.toString()}`)
                    inner.putOwed(o)
                },
                dropOwed: (k) => inner.dropOwed(k),
                putKept(k) {
                    kept.add(k.id)
                    inner.putKept(k)
                },
                dropKept: (k) => inner.dropKept(k),
            }
        },
        remove(id) {
            seen.delete(id)
            st.remove(id)
        },
        commit: () => st.commit(),
        close: () => st.close(),
    }
}

async function main(): Promise<void> {
    const { positionals, values } = parseArgs({
        allowPositionals: true,
        options: {
            id: { type: "string" },
            port: { type: "string" },
            timeout: { type: "string", default: "2000" },
            interval: { type: "string", default: "100" },
            "warn-log": { type: "boolean" }, // server: warnings as JSON lines on stderr
            ids: { type: "string" }, // server: the ids that get soak traffic (default: every id)
            state: { type: "string" }, // the delivery state's folder (default: in memory)
            "state-sync": { type: "boolean" },
            batch: { type: "boolean" }, // read with readlines()
        },
    })
    const role = positionals[0]
    const port = Number(values.port)
    const timeout = Number(values.timeout)
    const interval = Number(values.interval)
    const run = randomBytes(4).readUInt32BE(0) % 1000000000
    const state = values.state === undefined ? undefined : tapped(await openState(values.state, { sync: values["state-sync"] === true }))
    if (role === "server") {
        const logger = values["warn-log"] ? makeLogger("warn", true) : undefined
        const server = new Server({ port, host: "127.0.0.1", timeout, logger, state })
        const flows: Flow[] = []
        const conns: Connection[] = []
        const ids = values.ids === undefined ? undefined : new Set(values.ids.split(","))
        server.on("connect", (conn) => {
            if (conns.includes(conn)) return
            if (ids !== undefined && !ids.has(conn.id)) return log(`@I stranger ${conn.id}`)
            conns.push(conn)
            log(`@I connect ${conn.id}`)
            const flow = new Flow(conn, `.srv.${conn.id}.${run}.`, interval)
            flows.push(flow)
            void readAll(conn, () => {}, values.batch === true)
            flow.start()
        })
        server.on("disconnect", (conn, reason) => log(`@I disconnect ${conn.id} ${reason}`))
        await server.listen()
        log(`@I listening ${server.port} run ${run}`)
        createInterface({ input: process.stdin }).on("line", async (l) => {
            if (l.trim() === "dump") return conns.forEach((c, i) => dump(c.id, c, flows[i]!))
            if (l.trim() !== "stop") return
            await Promise.all(flows.map((f) => f.stop()))
            await Promise.all(conns.map((c) => c.write("stop").catch(() => {})))
            log(`@I done failed ${flows.reduce((s, f) => s + f.failed, 0)}`)
        })
    } else if (role === "client" || role === "v1client") {
        const id = values.id ?? ""
        const client =
            role === "client"
                ? new Client({ id, port, host: "127.0.0.1", timeout, state, onStatus: (up, reason?: string) => log(`@I ${up ? "up" : `down ${reason ?? ""}`}`) })
                : // A refused first connect would stop an original board for
                  // good (its fault 7): the soak's refusals are for the link.
                  new V1Client({ id, port, timeout, stopOnFirstRefusal: false })
        const flow = new Flow(client, `.${id}.srv.${run}.`, interval)
        createInterface({ input: process.stdin }).on("line", (l) => l.trim() === "dump" && dump(id, client, flow))
        client.start()
        log(`@I start ${run}`)
        void readAll(client, () => {
            log(`@I stopping, ${flow.pending} writes pending`)
            void flow.stop().then(() => log(`@I done failed ${flow.failed}`))
        }, values.batch === true)
        flow.start()
    } else {
        process.stderr.write("usage: peer.js server|client ...\n")
        process.exit(2)
    }
}

void main()
