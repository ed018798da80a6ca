// --app qos / qos-fast: the server side of the qos demo. For each board it
// checks that the numbered lines the board sends arrive exactly once (and in
// order for qos), logs a report every 20 lines, and sends numbered lines of
// its own: one at a time (qos) or 20 in flight at once (qos-fast).
import { QosCheck } from "./check.js"
import type { Server } from "../../server/server.js"
import type { Connection } from "../../server/connection.js"
import type { Logger } from "../../server/log.js"
import type { App } from "../app.js"
import { eachConnection } from "../../server/each.js"

export function qosApp(server: Server, log: Logger, interval: number, fast: boolean): App {
    const name = fast ? "qos-fast" : "qos"
    let stopped = false
    const timers = new Set<NodeJS.Timeout>()
    const sleep = (ms: number) =>
        new Promise<void>((resolve) => {
            const t = setTimeout(() => (timers.delete(t), resolve()), ms)
            timers.add(t)
        })

    const check = async (conn: Connection) => {
        const c = new QosCheck(!fast)
        try {
            for await (const line of conn) {
                const problem = c.add(line)
                if (problem !== "") log.warn({ client: conn.id }, `${name}: from ${conn.id}: ${problem}`)
                if (c.received % 20 === 0) log.info({ client: conn.id, received: c.received, duplicates: c.duplicates, missing: c.missing }, `${name}: from ${conn.id}: ${c.report()}`)
            }
        } catch {
            // ECLOSED at shutdown
        }
    }
    const send = async (conn: Connection) => {
        let n = 0
        try {
            while (!stopped) {
                if (fast) await Promise.all(Array.from({ length: 20 }, () => conn.write(String(n++), { wait: false })))
                else await conn.write(String(n++))
                await sleep(fast ? interval : Math.floor(interval / 10))
            }
        } catch {
            // ECLOSED at shutdown
        }
    }
    const unsubscribe = eachConnection(server, (c) => {
        void check(c)
        void send(c)
    })
    return {
        stop: () => {
            stopped = true
            unsubscribe()
            for (const t of timers) clearTimeout(t)
        },
    }
}
