// --app echo: every line a client sends is written back to it (qos).
import type { Server } from "../server.js"
import type { Connection } from "../connection.js"
import type { Logger } from "../log.js"
import type { App } from "./index.js"

export function echoApp(server: Server, log: Logger): App {
    const serving = new Set<Connection>()
    const serve = async (conn: Connection) => {
        try {
            for await (const line of conn) await conn.write(line)
        } catch (e) {
            log.debug({ client: conn.id, err: (e as Error).message }, "echo: stopped")
        }
    }
    const onConnect = (conn: Connection) => {
        if (serving.has(conn)) return // one loop per Connection, across reconnects
        serving.add(conn)
        void serve(conn)
    }
    server.on("connect", onConnect)
    return { stop: () => void server.off("connect", onConnect) }
}
