import { checkDelivery, Faults, noFaults, Sim, Writer } from "./sim.js"
import { eq, ok, suite } from "./harness.js"
import { boardCfg, nodeCfg } from "./drive.js"

function faulty(seed: number): Faults {
    const f = noFaults()
    f.lossPct = 10
    f.dupPct = 10
    f.cutEvery = 1500
    f.silentPct = 30
    f.latency = 2
    f.maxChunk = 1 + (seed % 7)
    f.until = 20000
    return f
}

// Runs `n` lines each way through a faulty network; returns the problem or "".
async function exchange(seed: number, n: number, qos: boolean, wait: boolean, board: boolean): Promise<string> {
    const cc = board ? boardCfg({}) : nodeCfg({})
    const sim = new Sim(cc, nodeCfg({}), faulty(seed), seed)
    sim.clientWriter = new Writer("c", n, qos, wait, wait ? 4 : 16)
    sim.serverWriter = new Writer("s", n, qos, wait, wait ? 4 : 16)
    const cw = sim.clientWriter
    const sw = sim.serverWriter
    const done = await sim.run(function () {
        return cw.finished() && sw.finished() && sim.now > 20000
    }, 200000)
    if (!done) return "seed " + seed + ": not finished (client sent " + cw.sent + " done " + cw.done.length + ", server sent " + sw.sent + " done " + sw.done.length + ")"
    // Let the last ACKs and deliveries land.
    await sim.runFor(5000)
    let p = checkDelivery(cw, sim.serverRx, wait)
    if (p !== "") return "seed " + seed + " client->server: " + p
    p = checkDelivery(sw, sim.clientRx, wait)
    if (p !== "") return "seed " + seed + " server->client: " + p
    if (qos && (cw.done.length !== n || sw.done.length !== n)) return "seed " + seed + ": not every qos write completed"
    if (qos && (sim.serverRx.length !== n || sim.clientRx.length !== n)) return "seed " + seed + ": delivered " + sim.serverRx.length + "/" + sim.clientRx.length
    if (sim.cuts === 0) return "seed " + seed + ": no cut happened"
    return ""
}

// A wrap of qos lines (every id seen once), then `gap` non-qos lines each
// batch followed by a silent cut, then 600 qos lines over a clean network.
// Before the fix a receiver took new ids 128 past the gap for duplicates.
async function afterGap(gap: number): Promise<string> {
    const sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 7)
    const a = new Writer("a", 260, true, false, 16)
    if (!(await writeAll(sim, a, 60000))) return "first lines not written"
    let p = checkDelivery(a, sim.serverRx, false)
    if (p !== "") return p
    let written = 0
    for (let batch = 0; written < gap && batch < 200; batch++) {
        sim.serverRx = [] // the VM's heap is small
        const n = new Writer("n" + batch, 20, false, false, 20)
        await writeAll(sim, n, 20000)
        written += n.done.length
        sim.cut(true)
    }
    if (written < gap) return "only " + written + " non-qos lines written"
    sim.serverRx = []
    const b = new Writer("b", 300, true, false, 16)
    if (!(await writeAll(sim, b, 120000))) return "last lines not written (" + b.done.length + ")"
    await sim.runFor(3000)
    p = checkDelivery(b, sim.serverRx, false)
    if (p === "" && sim.serverRx.length !== 300) return "delivered " + sim.serverRx.length + " of 300"
    return p
}

async function writeAll(sim: Sim, w: Writer, limitMs: number): Promise<boolean> {
    sim.clientWriter = w
    return await sim.run(function () {
        return w.finished()
    }, limitMs)
}

// 60 qos lines without wait, 16 in flight, from a devs-iot server to a
// board whose receive queue holds 2 and whose application often leaves
// them unread, across socket cuts: the board drops lines for a full queue.
async function toDroppingBoard(seed: number): Promise<{ problem: string; dropped: number }> {
    const f = noFaults()
    f.cutEvery = 4000
    f.silentPct = 30
    f.latency = 2
    f.maxChunk = 1 + (seed % 7)
    f.until = 20000
    f.slowReadPct = 90
    const sim = new Sim(boardCfg({ maxReceivedLines: 2, maxBacklogBytes: 0 }), nodeCfg({}), f, seed)
    const sw = new Writer("s", 60, true, false, 16)
    sim.serverWriter = sw
    const done = await sim.run(function () {
        return sw.finished() && sim.now > 20000
    }, 200000)
    if (!done) return { problem: "not finished (" + sw.done.length + " of 60)", dropped: 0 }
    await sim.runFor(5000)
    let p = checkDelivery(sw, sim.clientRx, true)
    if (p === "" && sim.clientRx.length !== 60) p = "delivered " + sim.clientRx.length + " of 60"
    return { problem: p, dropped: sim.client.stats.dropped }
}

export const pairSuite = suite("two links over a faulty network", function (test) {
    test("exactly-once and order, wait=true, both directions: loss, duplication, cuts, 1-7 byte chunks", async function () {
        for (let seed = 1; seed <= 3; seed++) eq(await exchange(seed, 30, true, true, false), "", "problem")
    })
    test("exactly-once, wait=false, both directions, board limits on the client", async function () {
        for (let seed = 11; seed <= 13; seed++) eq(await exchange(seed, 40, true, false, true), "", "problem")
    })
    test("wait=false to a board that drops for a full queue: in order and once, across cuts", async function () {
        let dropped = 0
        for (let seed = 31; seed <= 33; seed++) {
            const r = await toDroppingBoard(seed)
            eq(r.problem, "", "seed " + seed)
            dropped += r.dropped
        }
        ok(dropped > 0, "the board dropped lines")
    })
    test("qos=false: never duplicated; losses allowed", async function () {
        eq(await exchange(21, 40, false, false, false), "", "problem")
    })
    test("non-qos lines lost in silent cuts leave no stale ids: every later qos line arrives once", async function () {
        for (let gap = 40; gap <= 400; gap += 360) eq(await afterGap(gap), "", "gap of " + gap + " lines")
    })
    test("devs-iot peers: both ends negotiate the extension, and no bad line is seen", async function () {
        const sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 1)
        await sim.run(function () {
            return sim.client.status() && sim.server !== undefined && sim.server.status()
        }, 10000)
        eq(sim.clientPeers, "devs-iot", "client sees a devs-iot server")
        ok(sim.now < 50, "up without waiting for a keepalive (" + sim.now + " ms)")
        eq(sim.client.stats.badLines + (sim.server ? sim.server.stats.badLines : 0), 0, "no bad lines")
    })
    test("server restart: every completed client write reaches one server once", async function () {
        const sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 5)
        const w = new Writer("c", 20, true, true, 1)
        sim.clientWriter = w
        await sim.run(function () {
            return w.done.length >= 5
        }, 10000)
        sim.restartServer()
        await sim.run(function () {
            return w.finished()
        }, 30000)
        await sim.runFor(3000)
        eq(checkDelivery(w, sim.serverRx, true), "", "problem")
        ok(sim.serverRx.length >= 15, "new server got the rest")
    })
    test("client restart: its ids start again at 00 and are delivered, not taken as duplicates", async function () {
        const sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 6)
        sim.clientWriter = new Writer("a", 5, true, true, 1)
        const first = sim.clientWriter
        await sim.run(function () {
            return first.finished()
        }, 10000)
        sim.restartClient()
        const second = new Writer("b", 5, true, true, 1)
        sim.clientWriter = second
        sim.record = true
        await sim.run(function () {
            return second.finished()
        }, 10000)
        const wire = sim.wire.join("")
        ok(wire.indexOf("\n00b-0\n") >= 0 && wire.indexOf("b-0\n") === wire.indexOf("00b-0\n") + 2, "restarted client sends b-0 as 00")
        eq(sim.serverRx.length, 10, "all ten delivered")
    })
    test("recovery: after a cut with FIN the link is back within the back-off", async function () {
        const sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 7)
        await sim.run(function () {
            return sim.client.status()
        }, 5000)
        sim.cut(false)
        const t0 = sim.now
        await sim.run(function () {
            return sim.client.status() && sim.server !== undefined && sim.server.status()
        }, 5000)
        ok(sim.now - t0 <= 150, "back after " + (sim.now - t0) + " ms of virtual time (first back-off <= 100 ms)")
    })
    test("recovery: a silent stall is detected within timeout at both ends", async function () {
        const sim = new Sim(nodeCfg({}), nodeCfg({}), noFaults(), 8)
        await sim.run(function () {
            return sim.client.status() && sim.server !== undefined && sim.server.status()
        }, 5000)
        const t0 = sim.now
        sim.cut(true)
        await sim.run(function () {
            return !sim.client.status() && sim.server !== undefined && !sim.server.status()
        }, 10000)
        ok(sim.now - t0 <= 2000, "both ends down after " + (sim.now - t0) + " ms")
    })
})
