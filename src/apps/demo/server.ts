// --app demo: the server side of micropython-iot's demo, for up to four
// boards with ids "1" to "4". Each board sends a JSON list every few seconds
// ([connects, count, free heap]); the server logs it and sends each board
// [count, seconds since the server started] every `interval` ms.
import type { Server } from "../../server/server.js"
import type { Connection } from "../../server/connection.js"
import type { Logger } from "../../server/log.js"
import type { App } from "../app.js"

export const DEMO_IDS = ["1", "2", "3", "4"]

export function demoApp(server: Server, log: Logger, interval: number): App {
    const started = Date.now()
    let stopped = false
    const timers: NodeJS.Timeout[] = []

    const reader = async (conn: Connection) => {
        try {
            for await (const line of conn) {
                let data: unknown
                try {
                    data = JSON.parse(line)
                } catch {
                    log.warn({ client: conn.id, line }, "demo: not JSON")
                    continue
                }
                log.info({ client: conn.id, data }, `demo: got ${JSON.stringify(data)} from ${conn.id}`)
            }
        } catch {
            // ECLOSED at shutdown
        }
    }

    const writer = async (conn: Connection) => {
        let count = 0
        while (!stopped) {
            const data = [count++, Math.floor((Date.now() - started) / 1000)]
            try {
                await conn.write(JSON.stringify(data)) // waits across outages
            } catch {
                return // ECLOSED at shutdown
            }
            log.info({ client: conn.id, data }, `demo: sent ${JSON.stringify(data)} to ${conn.id}`)
            await new Promise<void>((resolve) => timers.push(setTimeout(resolve, interval)))
        }
    }

    for (const id of DEMO_IDS) {
        server.clientConn(id).then(
            (conn) => {
                if (stopped) return
                log.info({ client: id }, `demo: client ${id} connected`)
                void reader(conn)
                void writer(conn)
            },
            () => undefined, // ECLOSED: the server closed before this id came
        )
    }
    return {
        stop: () => {
            stopped = true
            for (const t of timers) clearTimeout(t)
        },
    }
}
