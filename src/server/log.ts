// Structured logs (pino): one line per event. Readable by default, JSON lines
// with --json. Library users pass their own pino logger, or get a silent one.
import { pino, type Logger } from "pino"
import pretty from "pino-pretty"

export type { Logger }

export const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const
export type Level = (typeof LEVELS)[number]

export function silentLogger(): Logger {
    return pino({ level: "silent" })
}

// Logs go to stderr: the client CLI's stdout carries received lines only.
// Every line carries the date and time in UTC (ISO 8601), readable or JSON.
export function makeLogger(level: Level, json: boolean): Logger {
    if (json) return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }))
    const stream = pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, translateTime: "UTC:yyyy-mm-dd'T'HH:MM:ss.l'Z'", ignore: "pid,hostname", singleLine: true })
    return pino({ level, base: undefined }, stream)
}
