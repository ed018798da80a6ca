// devs-iot for Node, the package's one entry point (`import ... from "devs-iot"`):
// - Server: accepts boards and Node clients; one Connection per client id.
// - Connection, Client: the same socket-like interface (readline, readlines, write with
//   qos and wait, status, connected, for await); Client reconnects forever.
// - LinkError: what the library refuses, with a `code` (the few other errors:
//   docs/api.md, "Errors").
// - makeLogger, silentLogger: the pino loggers the CLI uses; pass `logger`.
// - parseKeys, parseKeyFile, loadKeyFile, KeyFileError: the per-client key file.
// - HttpStatus, Fleet: metrics, status API and dashboard; openState: the
//   delivery state on disk; Gateway: the MQTT gateway.
// - requestDeploy: what `devs-iot deploy` does, as a call on an admin's Client.
// Documented in the README ("The API") and docs/api.md, with every option in docs/settings.md;
// runnable examples in examples/.
export { Server, type ServerOptions, type Warning, type HostileLimits, type KeyTable, type KeyValue, type ForgetReason } from "./server.js"
export { Connection } from "./connection.js"
export { Client, type ClientOptions } from "./client.js"
export type { WriteOptions } from "./driver.js"
export type { WaitOptions } from "./abort.js"
export { LinkError, type LinkErrorCode, type LinkOptions, type LinkStats, type Peer, type Report } from "../shared/index.js"
export { makeLogger, silentLogger, type Logger } from "./log.js"
export { parseKeys, parseKeyFile, loadKeyFile, parseClientKey, modeWarning, KeyFileError, type KeyFile, type KeySpec } from "./keys.js"
export { HttpStatus, type HttpOptions } from "./http.js"
export { openState, MemoryState, DiskState, StateError, type StateStore, type DiskStateOptions } from "./state.js"
export { Gateway, type GatewayOptions } from "./gateway.js"
export { Fleet, type BoardStatus, type BoardReport, type BoardException, type FleetTotals } from "./fleet.js"
export { requestDeploy } from "./ota/admin.js"
export type { DeployReport, Outcome as DeployOutcome } from "./ota/ota.js"
