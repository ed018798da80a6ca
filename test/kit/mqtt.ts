// MQTT.js clients for the gateway tests: the apps on the broker, as a
// user's would be.
import { connect as mqttConnect, type MqttClient } from "mqtt"
import { Client } from "../../src/server/index.js"
import { cleanup, onCleanup, within } from "./util.js"
import { Mosquitto } from "./mosquitto.js"
import { FaultProxy } from "./proxy.js"

// Connected (a persistent session unless `clean`), ended at cleanup.
export async function mqttClient(url: string, clientId: string, clean = false): Promise<MqttClient> {
    const c = mqttConnect(url, { clientId, clean, reconnectPeriod: 100 })
    onCleanup(() => void c.end(true))
    await within(new Promise<void>((r) => c.once("connect", () => r())), 10000, `MQTT ${clientId} connected`)
    return c
}

// Runs `make(i)` for i in 0..n-1 with at most `inFlight` unsettled at a time.
export async function pipeline(n: number, inFlight: number, make: (i: number) => Promise<unknown>): Promise<void> {
    let next = 0
    const lane = async () => {
        while (next < n) await make(next++)
    }
    await Promise.all(Array.from({ length: inFlight }, lane))
}

// Resolves when `c` gets an "online" status: called before `c`
// subscribes to the board's status topic, so the retained one counts.
export function statusOnline(c: MqttClient, ms = 30000): Promise<void> {
    return within(new Promise<void>((r) => c.on("message", (t, p) => t.endsWith("/status") && p.toString() === "online" && r())), ms, "board online")
}

// A Node client board `id` on the gateway at `port`, up once `pub` (the
// app) sees its status online.
export async function boardOnline(pub: MqttClient, id: string, port: number, window?: number): Promise<Client> {
    const online = statusOnline(pub)
    await pub.subscribeAsync(`devs-iot/${id}/status`, { qos: 1 })
    const board = cleanup(new Client({ id, port, backoffFirst: 20, backoffCap: 100, ...(window ? { window } : {}) }).start())
    await board.connected()
    await online
    return board
}

// Mosquitto, and a proxy in front of it that can cut every connection.
export async function brokerBehindProxy(): Promise<{ broker: Mosquitto; proxy: FaultProxy }> {
    const broker = cleanup(new Mosquitto())
    await broker.start()
    const proxy = new FaultProxy(broker.port)
    await proxy.listen()
    onCleanup(() => proxy.close())
    return { broker, proxy }
}
