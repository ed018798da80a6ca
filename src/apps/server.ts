// Server applications the CLI can run (--app).
import type { Server } from "../server/server.js"
import type { Connection } from "../server/connection.js"
import type { Logger } from "../server/log.js"
import { demoApp, DEMO_IDS } from "./demo/server.js"
import { echoApp } from "./echo/server.js"
import { eachConnection } from "../server/each.js"
import { qosApp } from "./qos/server.js"
import { remoteApp } from "./remote/server.js"
import type { App } from "./app.js"

export type { App } from "./app.js"

export const APPS = ["demo", "remote", "qos", "qos-fast", "echo", "none"] as const
export type AppName = (typeof APPS)[number]

// --app none: no application logic; each received line is read, so the
// receive queue never fills, and logged at debug.
function noneApp(server: Server, log: Logger): App {
    const serve = async (conn: Connection) => {
        try {
            for await (const line of conn) log.debug({ client: conn.id, line }, "received")
        } catch {
            // ECLOSED at shutdown
        }
    }
    return { stop: eachConnection(server, (conn) => void serve(conn)) }
}

// Ids an app expects, used when --expect is not given.
export function appExpects(name: AppName): string[] {
    return name === "demo" ? DEMO_IDS : []
}

export function startApp(name: AppName, server: Server, log: Logger, interval: number): App {
    switch (name) {
        case "demo":
            return demoApp(server, log, interval)
        case "remote":
            return remoteApp(server, log)
        case "qos":
            return qosApp(server, log, interval, false)
        case "qos-fast":
            return qosApp(server, log, interval, true)
        case "echo":
            return echoApp(server, log)
        case "none":
            return noneApp(server, log)
    }
}
