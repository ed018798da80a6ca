// The board firmware in DeviceScript's simulator (device-like mode, the real
// bytecode), against a server process: qos write round trips timed on the
// board (ds.millis(): whole ms) and at the server, and the heap the firmware
// has left, with and without a client (DeviceScript has no heap statistics:
// the firmware allocates 1 KB blocks until the VM runs out of memory, and the
// last total it printed is what was free).
import { buildSimImage, runSim, type SimImage, type SimRun } from "../../src/server/cli/sim.js"
import { startWorker, type Worker } from "../lib/proc.js"
import { within, type Context, type SectionResult } from "../lib/context.js"
import { summarizeHistogram, type Summary } from "../lib/stats.js"
import { kb, ms } from "../lib/table.js"

const TIMEOUT = 2000
// DEVS_IOT_BENCH_HEAP=40960: the client sized for that chip heap (an
// ESP32-S2's), still measured in the simulator's 64 KB heap.
const HEAP = process.env["DEVS_IOT_BENCH_HEAP"] ? Number(process.env["DEVS_IOT_BENCH_HEAP"]) : undefined

export interface BoardData {
    atBoard: Summary // board writes, server ACKs; whole-ms samples
    atServer: Summary // server writes, board ACKs
    imageBytes: number
    freeNoClient: number // bytes of ballast allocated before running out
    freeClientUp: number
    freeBurst: number // the client up, a 1,000-line burst arrived and not read
    simHeapNote: string
    sizedFor: number // the chip heap the client sized its buffers for
}

// The last "bench: ballast N" before the VM ran out of memory.
function ballast(output: string): number {
    const end = output.indexOf("OutOfMemory")
    const text = end >= 0 ? output.slice(0, end) : output
    const all = [...text.matchAll(/bench: ballast (\d+)/g)]
    return all.length ? Number(all[all.length - 1]![1]) : NaN
}

export async function board(ctx: Context): Promise<SectionResult> {
    const n = ctx.quick ? 50 : 500
    const images: SimImage[] = []
    const vms: SimRun[] = []
    let server: Worker | undefined
    let data: BoardData
    try {
        server = await startWorker("server", 600000)
        const lines: string[] = []
        let onLine = () => {}
        server.onEvent((e) => {
            if (e.event === "line" && e["id"] === "bench1") lines.push(e["line"] as string), onLine()
        })
        const nextLine = () => new Promise<string>((resolve) => (onLine = () => resolve(lines.shift()!)))
        const { port } = await server.call<{ port: number }>("listen", { timeout: TIMEOUT })
        ctx.log("board: building the bench firmware")
        const img = await buildSimImage({ app: "bench", id: "bench1", host: "127.0.0.1", port, timeout: TIMEOUT, heap: HEAP })
        images.push(img)
        const vm = await runSim(img.image)
        vms.push(vm)
        await server.call("waitFor", { id: "bench1" }, 60000)
        const boardRtt = async (count: number): Promise<Summary> => {
            const got = nextLine()
            await server!.call("write", { id: "bench1", line: JSON.stringify({ cmd: "rtt", n: count }) })
            const r = JSON.parse(await within(got, 120000, "the board's round trips")) as { rtt: { total: number; hist: Array<[number, number]> } }
            return summarizeHistogram(r.rtt.hist, r.rtt.total)
        }
        ctx.log(`board: ${n} round trips each way`)
        await boardRtt(20) // warm-up
        const atBoard = await boardRtt(n)
        const atServer = await server.call<Summary>("rtt", { id: "bench1", n, warmup: 20 }, 120000)
        ctx.log("board: heap left with the client up")
        const mark = vm.output.length
        await server.call("write", { id: "bench1", line: JSON.stringify({ cmd: "ballast" }) })
        await vm.waitFor(/OutOfMemory/, 60000, mark)
        const freeClientUp = ballast(vm.output.slice(mark))
        await vm.stop()
        ctx.log("board: heap left while it holds a 1,000-line burst unread")
        const vmB = await runSim(img.image)
        vms.push(vmB)
        await server.call("waitFor", { id: "bench1" }, 60000)
        await vmB.waitFor(/bench: started/, 60000)
        await server.call("write", { id: "bench1", line: JSON.stringify({ cmd: "hold", ms: 3000 }) })
        await vmB.waitFor(/bench: holding/, 30000)
        await server.call("burst", { id: "bench1", n: 1000 })
        await vmB.waitFor(/OutOfMemory/, 60000)
        const freeBurst = ballast(vmB.output)
        await vmB.stop()
        ctx.log("board: heap left with no client")
        const img0 = await buildSimImage({ app: "bench", id: "bench0", host: "127.0.0.1", port, role: "ballast" })
        images.push(img0)
        const vm0 = await runSim(img0.image)
        vms.push(vm0)
        await vm0.waitFor(/OutOfMemory/, 60000)
        const freeNoClient = ballast(vm0.output)
        data = {
            atBoard,
            atServer,
            imageBytes: img.bytes,
            freeNoClient,
            freeClientUp,
            freeBurst,
            simHeapNote: "the simulator's VM heap, not an ESP32's; 1 KB blocks, so within about 1 KB",
            sizedFor: HEAP ?? 65536,
        }
    } finally {
        for (const v of vms) await v.stop()
        for (const i of images) i.remove()
        await server?.stop()
    }
    return {
        name: "board",
        data,
        tables: [
            {
                title: `qos write round trip, board firmware in the DeviceScript simulator (ms, ${n} writes each)`,
                head: ["write called -> resolved", "median", "p99", "mean"],
                rows: [
                    ["board -> server, timed on the board (ds.millis(), whole ms)", ms(data.atBoard.median), ms(data.atBoard.p99), ms(data.atBoard.mean)],
                    ["server -> board, timed at the server", ms(data.atServer.median), ms(data.atServer.p99), ms(data.atServer.mean)],
                ],
            },
            {
                title: `Board heap (simulator${data.sizedFor !== 65536 ? `, client sized for a ${data.sizedFor}-byte heap` : ""}; DeviceScript has no heap statistics API, so: the largest ballast the firmware could still allocate, in 1 KB blocks)`,
                head: ["", "bytes"],
                rows: [
                    ["free with no client (the bench firmware before it starts one)", kb(data.freeNoClient)],
                    [`free with the client connected, after ${2 * n + 40} round trips (warm-ups included)`, kb(data.freeClientUp)],
                    ["the client's share: the difference", kb(data.freeNoClient - data.freeClientUp)],
                    ["free with the client connected, holding a 1,000-line burst unread (receive queue and backlog full)", kb(data.freeBurst)],
                    ["the client's share then", kb(data.freeNoClient - data.freeBurst)],
                ],
            },
        ],
    }
}
