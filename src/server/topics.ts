// The MQTT topic layout of the gateway (docs/gateway.md), and its checks.
// Pure: no I/O, so it is unit-tested in the fast layer.
import { checkClientId } from "../shared/index.js"

const TOPIC_ROOT = "devs-iot"

// A board's topics: `up` (board -> apps), `down` (apps -> board), and the
// retained `status` ("online" / "offline", kept true by a last will).
export function boardTopic(id: string, kind: "up" | "down" | "status"): string {
    return `${TOPIC_ROOT}/${id}/${kind}`
}

// A gateway's retained status ("online" / "offline", its last will), and
// where a gateway says it took a board (the others let go of it).
export function gatewayTopic(name: string): string {
    return `${TOPIC_ROOT}/$gateway/${name}/status`
}
export function tookTopic(name: string): string {
    return `${TOPIC_ROOT}/$gateway/${name}/took`
}
export const TOOK_FILTER = `${TOPIC_ROOT}/$gateway/+/took`

// Retained per board: `<down> <board>`. `down`: the epoch of the id
// sequence its down lines are sent in (message id = from the MQTT packet
// id), so that the next gateway to hold it continues it; `board`: the
// board's own epoch (its life) whose up lines the broker may hold, so that
// the next gateway knows a restarted board. See docs/protocol.md,
// "The MQTT gateway". Either may be empty; an empty payload: neither.
export function linkTopic(id: string): string {
    return `${TOPIC_ROOT}/$link/${id}`
}
export const LINK_FILTER = `${TOPIC_ROOT}/$link/+`

export function linkRecord(down: string, board: string): string {
    return down === "" && board === "" ? "" : `${down} ${board}`
}

// Why a board's epoch cannot go in a link record, or "" (a hello's epoch
// ends at a space; printable ASCII keeps the record readable).
export function boardEpochProblem(epoch: string): string {
    return /^[\x21-\x7e]{1,64}$/.test(epoch) ? "" : `board epoch ${JSON.stringify(epoch.slice(0, 70))} is not 1-64 printable ASCII characters without spaces`
}

// A link record read back: the board id, down epoch and board epoch ("" when none), or a problem.
export function parseLinkRecord(topic: string, payload: Buffer): { id: string; epoch: string; board: string } | { problem: string } {
    const parts = topic.split("/")
    if (parts.length !== 3 || parts[0] !== TOPIC_ROOT || parts[1] !== "$link") return { problem: `topic ${JSON.stringify(topic)}: expected ${TOPIC_ROOT}/$link/<id>` }
    const p = topicIdProblem(parts[2]!)
    if (p !== "") return { problem: `topic ${JSON.stringify(topic)}: board id ${p}` }
    const text = payload.toString("latin1")
    const sp = text.indexOf(" ")
    // A record without a space is a down epoch alone (written by a gateway before board epochs were kept).
    const epoch = sp < 0 ? text : text.slice(0, sp)
    const board = sp < 0 ? "" : text.slice(sp + 1)
    if (epoch !== "" && !/^[0-9a-f]{8,32}$/.test(epoch)) return { problem: `link record of ${parts[2]}: epoch ${JSON.stringify(epoch.slice(0, 40))} is not 8-32 lowercase hex digits` }
    if (board !== "" && boardEpochProblem(board) !== "") return { problem: `link record of ${parts[2]}: ${boardEpochProblem(board)}` }
    return { id: parts[2]!, epoch, board }
}

// The MQTT client id of a board's session: every gateway derives the same,
// so a board reconnecting elsewhere takes its session over.
export function sessionClientId(id: string): string {
    return `devs-iot-${id}`
}

// Why a board id cannot be a topic level, or "": MQTT forbids `+`, `#` and
// `/` inside one level and `$` at the start of a level is reserved.
export function topicIdProblem(id: string): string {
    const p = checkClientId(id)
    if (p !== "") return p
    if (id.includes("/")) return "contains '/' (a topic level separator)"
    if (id.includes("+") || id.includes("#")) return "contains an MQTT wildcard ('+' or '#')"
    if (id.startsWith("$")) return "starts with '$' (reserved for broker topics)"
    if (Buffer.byteLength(id) > 200) return "longer than 200 bytes"
    // Mosquitto drops the connection of a client whose topic or client id
    // holds one of these: the gateway's own connection would go down with
    // its link record for this id, again after each reconnect.
    const bad = /[\u0000-\u001f\u007f-\u009f\ufdd0-\ufdef\ufffe\uffff]|[\ud83f\ud87f\ud8bf\ud8ff\ud93f\ud97f\ud9bf\ud9ff\uda3f\uda7f\udabf\udaff\udb3f\udb7f\udbbf\udbff][\udffe\udfff]/.exec(id)
    if (bad) return `contains U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")} (a control character or non-character: MQTT brokers refuse it in a topic)`
    return ""
}

// A board topic read back: its id and kind, or a problem naming what is wrong.
export function parseBoardTopic(topic: string): { id: string; kind: "up" | "down" | "status" } | { problem: string } {
    const parts = topic.split("/")
    if (parts.length !== 3) return { problem: `topic ${JSON.stringify(topic)}: expected ${TOPIC_ROOT}/<id>/<up|down|status>` }
    if (parts[0] !== TOPIC_ROOT) return { problem: `topic ${JSON.stringify(topic)}: does not start with ${TOPIC_ROOT}/` }
    const kind = parts[2]
    if (kind !== "up" && kind !== "down" && kind !== "status") return { problem: `topic ${JSON.stringify(topic)}: last level must be up, down or status` }
    const p = topicIdProblem(parts[1])
    if (p !== "") return { problem: `topic ${JSON.stringify(topic)}: board id ${p}` }
    return { id: parts[1], kind }
}

// A down payload without one line end at its end ("\n" or "\r\n"): a file
// or standard input published whole (mosquitto_pub -f, -s) ends with one.
// The HTTP side takes a line the same way.
export function downLine(payload: Buffer): Buffer {
    let n = payload.length
    if (n > 0 && payload[n - 1] === 10) n -= n > 1 && payload[n - 2] === 13 ? 2 : 1
    return n === payload.length ? payload : payload.subarray(0, n)
}

// Why a down payload cannot be a line to a board, or "".
export function payloadProblem(payload: Buffer, maxLineBytes: number): string {
    if (payload.length === 0) return "empty payload"
    if (payload.length > maxLineBytes) return `payload of ${payload.length} bytes over the line limit (${maxLineBytes})`
    if (payload.includes(10)) return "payload contains a newline"
    try {
        STRICT_UTF8.decode(payload)
    } catch {
        return "payload is not valid UTF-8"
    }
    return ""
}

// Throws on bytes that are not UTF-8 (a payload may hold U+FFFD itself).
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true })
