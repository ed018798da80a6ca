// node dist/test/soak/gateways.js [--rounds N] [--boards K] [--per-round L]
// The long multi-gateway soak: 3 gateway processes on one Mosquitto, K Node
// clients holding the three addresses, L lines each way per client per
// round, and after each round a fault (each gateway SIGKILLed and restarted
// in turn, then a broker restart). Writes results/soak/<date>-gateways.json;
// exit 1 when a line was lost, published twice, or reached a board twice.
import { mkdirSync, writeFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { closeAll } from "../kit/util.js"
import { Mosquitto } from "../kit/mosquitto.js"
import { multiGatewayRun } from "../kit/gatewaysoak.js"

const { values } = parseArgs({ options: { rounds: { type: "string" }, boards: { type: "string" }, "per-round": { type: "string" } } })
function int(name: string, v: string | undefined, dflt: number, max: number): number {
    if (v === undefined) return dflt
    const n = Number(v)
    if (!Number.isInteger(n) || n < 1 || n > max) {
        console.error(`soak: --${name} must be a whole number from 1 to ${max}, not ${JSON.stringify(v)}`)
        process.exit(2)
    }
    return n
}
const rounds = int("rounds", values.rounds, 40, 100000)
const boards = int("boards", values.boards, 8, 1000)
const perRound = int("per-round", values["per-round"], 50, 10000)

const started = Date.now()
const broker = new Mosquitto()
let code = 0
try {
    await broker.start()
    const r = await multiGatewayRun({ boards, rounds, perRound, url: broker.url, broker })
    const faults = { gatewayKills: rounds - Math.floor(rounds / 4), brokerRestarts: Math.floor(rounds / 4) }
    const report = {
        date: new Date().toISOString(),
        options: { rounds, boards, perRound, gateways: 3 },
        faults,
        lines: r.lines,
        seconds: Math.round((Date.now() - started) / 1000),
        up: { lost: r.up.lost.length, publishedTwice: r.up.publishedTwice.length, brokerResendsOfCompletedDeliveries: r.up.brokerResends },
        down: { lost: r.down.lost.length, twiceAtBoard: r.down.dup.length },
        examples: { upLost: r.up.lost.slice(0, 10), upPublishedTwice: r.up.publishedTwice.slice(0, 10), downLost: r.down.lost.slice(0, 10), downTwice: r.down.dup.slice(0, 10) },
    }
    console.log(JSON.stringify(report, null, 2))
    mkdirSync("results/soak", { recursive: true })
    const file = `results/soak/${report.date.slice(0, 10)}-gateways.json`
    writeFileSync(file, JSON.stringify(report, null, 2) + "\n")
    console.log(`written to ${file}`)
    if (r.up.lost.length + r.up.publishedTwice.length + r.down.lost.length + r.down.dup.length > 0) code = 1
} finally {
    await closeAll()
    await broker.close()
}
process.exit(code)
