// Prometheus metrics of a server (GET /metrics). Labels take values from
// fixed lists only (directions, outage kinds, warning codes), never a board
// id, so a fleet of any size gives the same number of series. Counters are
// summed from the Connections' own counters at scrape time (with those of
// the Connections the server let go of, fleet.ts): nothing is added
// to the path of a line, except one histogram sample per round trip.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client"
import { clock } from "./clock.js"
import { AUTH_FAILURES, CAPS, OUTAGE_KINDS, type Fleet, type FleetTotals } from "./fleet.js"

export class Metrics {
    readonly registry = new Registry()
    private fleet: Fleet
    private cached: { at: number; t: FleetTotals } | undefined
    private onRoundTrip: (ms: number) => void

    constructor(fleet: Fleet) {
        this.fleet = fleet
        const r = [this.registry]
        const totals = () => this.totals()
        // A counter read from elsewhere: set to the current sum at each scrape.
        const sum = (name: string, help: string, read: (t: FleetTotals) => number) =>
            new Counter({
                name, help, registers: r,
                collect() {
                    this.reset()
                    this.inc(read(totals()))
                },
            })
        // A counter with a direction label: in (read by the application) and out.
        const eachWay = (name: string, help: string, inOf: (t: FleetTotals) => number, outOf: (t: FleetTotals) => number) =>
            new Counter({
                name, help, labelNames: ["direction"], registers: r,
                collect() {
                    const t = totals()
                    this.reset()
                    this.inc({ direction: "in" }, inOf(t))
                    this.inc({ direction: "out" }, outOf(t))
                },
            })
        new Gauge({ name: "devs_iot_boards", help: "Client ids whose link has come up at least once", registers: r, collect() { this.set(totals().boards) } })
        new Gauge({ name: "devs_iot_links_up", help: "Links up now", registers: r, collect() { this.set(totals().up) } })
        sum("devs_iot_connects_total", "Links that completed the handshake", (t) => t.connects)
        new Counter({
            name: "devs_iot_outages_total", help: "Links lost, by kind of reason", labelNames: ["reason"], registers: r,
            collect: () => setEach(outages, OUTAGE_KINDS, fleet.outages),
        })
        const outages = this.registry.getSingleMetric("devs_iot_outages_total") as Counter<"reason">
        eachWay("devs_iot_lines_total", "Lines each way: out = ACKed by the board (qos) or sent (no qos); in = read by the application", (t) => t.linesIn, (t) => t.linesOut)
        eachWay("devs_iot_line_bytes_total", "Payload bytes of those lines each way", (t) => t.bytesIn, (t) => t.bytesOut)
        sum("devs_iot_resends_total", "Messages sent again (no ACK in time, or dropped by the board)", (t) => t.resent)
        sum("devs_iot_duplicates_total", "Messages received again and not delivered twice", (t) => t.duplicates)
        sum("devs_iot_dropped_total", "Messages dropped un-ACKed for a full receive queue (the sender resends)", (t) => t.dropped)
        sum("devs_iot_refused_writes_total", "Writes refused at once (bad line, full queue, closed link)", (t) => t.refused)
        const rt = new Histogram({
            name: "devs_iot_round_trip_seconds", help: "From a message's send to its ACK (includes the board's read, up to ackDelay)", registers: r,
            buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        })
        this.onRoundTrip = (ms) => rt.observe(ms / 1000)
        fleet.on("roundtrip", this.onRoundTrip)
        new Counter({
            name: "devs_iot_auth_failures_total", help: "Failed authentications, by reason", labelNames: ["reason"], registers: r,
            collect: () => setEach(auth, AUTH_FAILURES, fleet.authFailures),
        })
        const auth = this.registry.getSingleMetric("devs_iot_auth_failures_total") as Counter<"reason">
        new Counter({
            name: "devs_iot_caps_hit_total", help: "Limits reached: hostile-input caps (by warning code) and full write queues", labelNames: ["cap"], registers: r,
            collect() {
                this.reset()
                for (const c of CAPS) this.inc({ cap: c }, fleet.warnings.get(c) ?? 0)
                this.inc({ cap: "write-queue-full" }, totals().queueFull)
            },
        })
        new Counter({
            name: "devs_iot_refusals_total", help: "Connections refused, by the reason a devs-iot client is told (a v1 peer is only closed)", labelNames: ["reason"], registers: r,
            collect: () => setEach(refusals, REFUSALS, fleet.server.refusals()),
        })
        const refusals = this.registry.getSingleMetric("devs_iot_refusals_total") as Counter<"reason">
        sum("devs_iot_keys_pushed_total", "Next keys pushed to boards and confirmed stored (--push-keys)", () => fleet.server.keysPushed())
        sum("devs_iot_state_write_failures_total", "Writes of the delivery state (--state) the disk refused: each is a batch not ACKed or not sent, tried again (a full disk)", () => fleet.server.stateWrites().failures)
        new Gauge({
            name: "devs_iot_state_writable", help: "1 while the delivery state's last writes held, 0 while the disk refuses them (full); 1 in memory", registers: r,
            collect() { this.set(fleet.server.stateWrites().ok ? 1 : 0) },
        })
        new Gauge({
            name: "devs_iot_unauthenticated_connections", help: "Connections whose link is not up yet", registers: r,
            collect() { this.set(fleet.server.hostileStats().unauthenticated) },
        })
    }

    // The Prometheus text and its content type.
    async text(): Promise<{ body: string; type: string }> {
        this.cached = undefined
        return { body: (await processMetrics().metrics()) + (await this.registry.metrics()), type: this.registry.contentType }
    }

    close(): void {
        this.fleet.off("roundtrip", this.onRoundTrip)
        this.registry.clear()
    }

    // One pass over the Connections per scrape, shared by every metric.
    private totals(): FleetTotals {
        const now = clock()
        if (!this.cached || now - this.cached.at > 100) this.cached = { at: now, t: this.fleet.totals() }
        return this.cached.t
    }
}

// The process's own metrics (CPU, memory, event loop, GC), one set for the
// process however many servers it starts and closes: prom-client's
// collectors start a GC observer and an event-loop monitor that nothing
// stops, so a set per server would leave more of them running each time.
let processRegistry: Registry | undefined
function processMetrics(): Registry {
    if (processRegistry) return processRegistry
    processRegistry = new Registry()
    // The event-loop monitor samples every 100 ms, not prom-client's 10:
    // at 10 it alone cost ~6 ms of CPU a second on an idle process.
    collectDefaultMetrics({ register: processRegistry, eventLoopMonitoringPrecision: 100 })
    return processRegistry
}

// The reasons of refusal.ts, a fixed list for the label.
const REFUSALS = ["auth-required", "wrong-key", "id-in-use", "revoked", "unknown-id", "server-full", "encryption-required"]

function setEach<L extends string>(c: Counter<L>, keys: readonly string[], counts: ReadonlyMap<string, number>): void {
    c.reset()
    for (const k of keys) c.inc({ reason: k } as never, counts.get(k) ?? 0)
}
