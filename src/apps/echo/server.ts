// --app echo: every line a client sends is written back to it (qos).
import type { Server } from "../../server/server.js"
import type { Connection } from "../../server/connection.js"
import type { Logger } from "../../server/log.js"
import type { App } from "../app.js"
import { eachConnection } from "../../server/each.js"

export function echoApp(server: Server, log: Logger): App {
    const serve = async (conn: Connection) => {
        try {
            for await (const line of conn) await conn.write(line)
        } catch (e) {
            log.debug({ client: conn.id, err: (e as Error).message }, "echo: stopped")
        }
    }
    return { stop: eachConnection(server, (conn) => void serve(conn)) }
}
