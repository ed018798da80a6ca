// Listening, and what comes after: a server emits failures to accept
// (EMFILE when the process is out of file descriptors) as "error", and an
// emitter with no "error" listener throws, which would end the process.
import { once } from "node:events"
import type { Server as NetServer } from "node:net"
import type { Logger } from "./log.js"
import { LogBudget } from "./admission.js"
import { clock } from "./clock.js"

const ERROR_LOG_EVERY = 5000 // ms between two such log lines

export async function listenOn(server: NetServer, port: number, host: string, log: Logger, what: string): Promise<void> {
    server.listen(port, host)
    await Promise.race([once(server, "listening"), once(server, "error").then(([e]) => Promise.reject(e))])
    server.removeAllListeners("error") // the one left by the race
    const budget = new LogBudget(1, ERROR_LOG_EVERY)
    server.on("error", (e: NodeJS.ErrnoException) => {
        const pass = budget.pass(e.code ?? "error", clock())
        if (pass) log.error({ code: e.code, ...pass }, `${what}: ${e.message}; still listening`)
    })
}

// An address (or host name) only this machine reaches.
export function isLoopbackHost(h: string): boolean {
    return h === "localhost" || h === "::1" || h === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}
