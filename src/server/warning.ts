// What the server warns about (its "warning" event, a Connection's too):
// the codes are in the README's Troubleshooting table. Apart from server.ts
// so that connection.ts can name it without an import circle.
export interface Warning {
    code: "unexpected-id" | "refused-id" | "duplicate-id" | "take-over" | "bad-id" | "id-timeout" | "bad-line" | "too-long" | "no-hello" | "flood" | "pending-limit" | "evicted" | "penalized" | "too-many-clients" | "auth-failed" | "auth-refused" | "revoked" | "slow-reader" | "id-rate" | "id-evicted"
    id?: string
    address?: string
    detail: string
}
