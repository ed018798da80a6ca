// Errors the core hands to applications. DeviceScript keeps `name` only if set
// by hand, and its JSON.parse errors are not `instanceof Error`: callers read
// `code`, never the class.

export type LinkErrorCode =
    | "ETYPE" // write() was given something other than a string
    | "EEMPTY" // write(""): would put an ACK-shaped line on the wire
    | "ENEWLINE" // a "\n" inside the line
    | "ETOOLONG" // line longer than maxLineBytes
    | "EQUEUEFULL" // the outgoing queue (writes waiting for the link) is full
    | "ECLOSED" // the link was closed by the application
    | "ECONFIG" // a configuration value is out of range

export class LinkError extends Error {
    code: LinkErrorCode
    constructor(code: LinkErrorCode, message: string) {
        super(message)
        this.name = "LinkError"
        this.code = code
    }
}
