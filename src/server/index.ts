// devs-iot for Node: the server, its per-client Connection, and the Node client.
export { Server, type ServerOptions, type Warning, type HostileLimits, type KeyTable, type KeyValue } from "./server.js"
export { Connection } from "./connection.js"
export { Client, type ClientOptions } from "./client.js"
export type { WriteOptions } from "./endpoint.js"
export { LinkError, type LinkErrorCode, type LinkOptions } from "../shared/index.js"
export { makeLogger, silentLogger, type Logger } from "./log.js"
export { parseKeys, parseKeyFile, loadKeyFile, parseClientKey, modeWarning, KeyFileError, type KeyFile, type KeySpec } from "./keys.js"
