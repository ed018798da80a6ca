// The multi-gateway run shared by the short soak (test/system/gateways.test.ts)
// and the long one (test/soak/gateways.ts): 3 gateway processes on one
// Mosquitto, Node clients holding all three addresses, lines both ways in
// rounds, a fault after each round (each gateway killed and restarted in
// turn, then a broker restart).
import { Client } from "../../src/server/index.js"
import { cli, cleanup, onCleanup, within, type Cli } from "./util.js"
import { Mosquitto } from "./mosquitto.js"
import { Deliveries } from "./deliveries.js"
import { mqttClient } from "./mqtt.js"

// A gateway process on `broker`, on loopback, stopped at cleanup; `port` 0
// picks a free one (gatewayPort() tells it); `timeout` its link timeout
// (ms), the default when undefined.
export function gatewayProcess(broker: string, port: number, name: string, timeout?: number): Cli {
    const g = cli(["gateway", "--mqtt", broker, "--host", "127.0.0.1", "--port", String(port), "--name", name, ...(timeout !== undefined ? ["--timeout", String(timeout)] : [])])
    onCleanup(() => {
        if (g.child.exitCode === null && g.child.signalCode === null) g.stop()
    })
    return g
}

// How long a gateway process may take to listen: Node loading the CLI, then
// up to 4 s for the broker (its CONNACK, then its version), on a loaded machine.
const GATEWAY_START_MS = 30000

// The port a gateway process listens on, once it says so. A port it binds
// itself (--port 0): one picked before a slow start may be taken by then.
export async function gatewayPort(g: Cli): Promise<number> {
    const m = await g.waitFor(/gateway listening \{"port":(\d+)/, GATEWAY_START_MS)
    return Number(m[1])
}

class Counts {
    private n = new Map<string, number>()
    private waiters = new Map<string, () => void>()
    add(k: string): void {
        this.n.set(k, (this.n.get(k) ?? 0) + 1)
        this.waiters.get(k)?.()
    }
    until(k: string, ms: number): Promise<void> {
        if (this.n.has(k)) return Promise.resolve()
        return within(new Promise<void>((r) => this.waiters.set(k, r)), ms, `${k} seen`)
    }
    faults(keys: string[]): { lost: string[]; dup: string[] } {
        return { lost: keys.filter((k) => !this.n.has(k)), dup: keys.filter((k) => (this.n.get(k) ?? 0) > 1) }
    }
}

export async function multiGatewayRun(o: { boards: number; rounds: number; perRound: number; url: string; broker: Mosquitto }): Promise<{ up: { lost: string[]; publishedTwice: string[]; brokerResends: number }; down: { lost: string[]; dup: string[] }; lines: number }> {
    const names = ["g1", "g2", "g3"]
    const gws = names.map((n) => gatewayProcess(o.url, 0, n))
    const ports = await Promise.all(gws.map((g) => gatewayPort(g)))
    const hosts = ports.map((p) => `127.0.0.1:${p}`).join(",")
    const sub = await mqttClient(o.url, "soak-sub")
    const up = new Deliveries()
    sub.on("message", (t, p, packet) => up.add(`${t.split("/")[1]} ${p.toString()}`, packet))
    await sub.subscribeAsync("devs-iot/+/up", { qos: 2 })
    const pub = await mqttClient(o.url, "soak-pub")
    const online = new Set<string>()
    const onlineWait = new Map<string, () => void>()
    pub.on("message", (t, p) => {
        const id = t.split("/")[1]!
        if (p.toString() === "online") {
            online.add(id)
            onlineWait.get(id)?.()
        }
    })
    await pub.subscribeAsync("devs-iot/+/status", { qos: 1 })
    const down = new Counts()
    const boards: Client[] = []
    for (let b = 0; b < o.boards; b++) {
        const c = cleanup(new Client({ id: `sb${b}`, host: hosts, backoffFirst: 50, backoffCap: 300 }).start())
        boards.push(c)
        void (async () => {
            for await (const l of c) down.add(`sb${b} ${l}`)
        })()
    }
    for (let b = 0; b < o.boards; b++) {
        if (!online.has(`sb${b}`)) await within(new Promise<void>((r) => onlineWait.set(`sb${b}`, r)), 30000, `sb${b} online`)
    }
    // Faults between rounds: kill a gateway (and start it again), or restart the broker.
    const faults: Array<() => Promise<void>> = []
    for (let i = 0; i < 3; i++)
        faults.push(async () => {
            gws[i]!.stop()
            await gws[i]!.exited
            gws[i] = gatewayProcess(o.url, ports[i]!, names[i]!)
            await gws[i]!.waitFor(/gateway listening/, 15000)
        })
    faults.push(() => o.broker.restart())
    const upKeys: string[] = []
    const downKeys: string[] = []
    let n = 0
    for (let r = 0; r < o.rounds; r++) {
        const waits: Promise<unknown>[] = []
        for (let b = 0; b < o.boards; b++) {
            for (let j = 0; j < o.perRound; j++) {
                const k = `u${n + j}`
                upKeys.push(`sb${b} ${k}`)
                waits.push(boards[b]!.write(k, { wait: false }))
                const d = `d${n + j}`
                downKeys.push(`sb${b} ${d}`)
                waits.push(pub.publishAsync(`devs-iot/sb${b}/down`, d, { qos: 1 }))
            }
        }
        n += o.perRound
        await within(Promise.all(waits), 120000, `round ${r}: lines ACKed`)
        await faults[r % faults.length]!()
    }
    for (let b = 0; b < o.boards; b++) {
        await within(boards[b]!.write("end"), 60000, `sb${b} end written`)
        await pub.publishAsync(`devs-iot/sb${b}/down`, "end", { qos: 1 })
        await within(up.wait(`sb${b} end`), 60000, `sb${b} end published`)
        await down.until(`sb${b} end`, 60000)
    }
    return { up: up.check(upKeys), down: down.faults(downKeys), lines: upKeys.length + downKeys.length }
}

