// --app remote: every line a board sends goes to every other connected board,
// with "from" added, so a button on one board switches LEDs on the others.
import type { Server } from "../../server/server.js"
import type { Connection } from "../../server/connection.js"
import type { Logger } from "../../server/log.js"
import type { App } from "../app.js"
import { eachConnection } from "../../server/each.js"

export function remoteApp(server: Server, log: Logger): App {
    const relay = async (from: Connection) => {
        try {
            for await (const line of from) {
                let out: string
                try {
                    const o = JSON.parse(line)
                    out = JSON.stringify(o && typeof o === "object" && !Array.isArray(o) ? { ...o, from: from.id } : { from: from.id, data: o })
                } catch {
                    out = JSON.stringify({ from: from.id, line })
                }
                const to = server.connections().filter((c) => c !== from && c.status())
                log.info({ client: from.id, to: to.map((c) => c.id) }, `remote: ${line} from ${from.id}`)
                // qos=false: a button state is stale once the next one is sent.
                await Promise.all(to.map((c) => c.write(out, { qos: false }).catch(() => {})))
            }
        } catch {
            // ECLOSED at shutdown
        }
    }
    return { stop: eachConnection(server, (c) => void relay(c)) }
}
