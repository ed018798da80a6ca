// Runs `serve` once for each client's Connection: a Connection outlives its
// sockets, so a reconnect must not start a second loop. Returns the stop.
import type { Server } from "./server.js"
import type { Connection } from "./connection.js"

export function eachConnection(server: Server, serve: (conn: Connection) => void): () => void {
    const serving = new Set<Connection>()
    const onConnect = (conn: Connection) => {
        if (serving.has(conn)) return
        serving.add(conn)
        serve(conn)
    }
    // A Connection the server let go of (evicted for room) is served no more.
    const onForget = (conn: Connection) => void serving.delete(conn)
    server.on("connect", onConnect)
    server.on("forget", onForget)
    return () => {
        server.off("connect", onConnect)
        server.off("forget", onForget)
    }
}
