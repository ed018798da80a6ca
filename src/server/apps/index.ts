// Server applications the CLI can run (--app).
import type { Server } from "../server.js"
import type { Logger } from "../log.js"
import { demoApp, DEMO_IDS } from "./demo.js"
import { echoApp } from "./echo.js"

export interface App {
    stop(): void
}

export const APPS = ["demo", "echo", "none"] as const
export type AppName = (typeof APPS)[number]

// Ids an app expects, used when --expect is not given.
export function appExpects(name: AppName): string[] {
    return name === "demo" ? DEMO_IDS : []
}

export function startApp(name: AppName, server: Server, log: Logger, interval: number): App {
    switch (name) {
        case "demo":
            return demoApp(server, log, interval)
        case "echo":
            return echoApp(server, log)
        case "none":
            return { stop: () => {} }
    }
}
