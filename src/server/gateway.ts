// The MQTT gateway: a devs-iot Server whose boards' lines go to and come
// from an MQTT broker (docs/gateway.md; the exactly-once argument is in
// docs/protocol.md, "The MQTT gateway").
//
// One persistent MQTT session per board id (client id sessionClientId(id),
// clean: false), held by the gateway that holds the board's link:
// - up: each line is held (LinkDriver.hold) and published at QoS 2 with
//   packet id = the line's link id + 1. It is ACKed to the board when the
//   broker answers PUBREC (the broker has stored it and will deliver it once,
//   on PUBREL). A resend of the same line, through this gateway or another,
//   carries the same packet id, which the broker's QoS 2 state recognises.
// - down: the session subscribes to its `down` topic at QoS 1; a message is
//   PUBACKed only once the board ACKed the line. A broker resend (dup) of a
//   packet this gateway already passed on is not written again. On a
//   broker that numbers a session's packets on across connections
//   (Mosquitto), the line's link message id comes from its packet id, in an
//   epoch kept in the broker (linkTopic): a broker resend to the next
//   gateway then carries the id the board already has, and its
//   de-duplication drops the copy.
import { createHash } from "node:crypto"
import { hostname } from "node:os"
import { createServer, type Server as NetServer } from "node:net"
import { connect as mqttConnect, Store, type IClientOptions, type MqttClient, type IPublishPacket } from "mqtt"
import { Backoff, LinkError, wireId, type HeldLine } from "../shared/index.js"
import { show } from "../shared/config.js"
import { Server, SERVER_KEYS, type ServerOptions } from "./server.js"
import { checkOptionKeys, type OptionKeys } from "./options.js"
import { LogBudget } from "./admission.js"
import { isLoopbackHost, listenOn } from "./listen.js"
import type { Connection } from "./connection.js"
import { clock } from "./clock.js"
import type { WriteOptions } from "./driver.js"
import { silentLogger, type Logger } from "./log.js"
import { boardEpochProblem, boardTopic, downLine, gatewayTopic, LINK_FILTER, linkRecord, linkTopic, parseLinkRecord, payloadProblem, sessionClientId, TOOK_FILTER, tookTopic, topicIdProblem } from "./topics.js"

// The gateway sets the server's epochFor (it continues each board's id
// sequence) and idProblem (ids are topic levels) itself.
export interface GatewayOptions extends Omit<ServerOptions, "epochFor" | "idProblem"> {
    mqtt?: string // the broker's URL (mqtt://host:port); none: an embedded broker (Aedes)
    brokerPort?: number // the embedded broker's port (default 1883; 0: a free one)
    brokerHost?: string // the embedded broker's address (default "127.0.0.1")
    name?: string // this gateway's name in topics (default <hostname>-<pid>)
    mqttBackoffFirst?: number // ms before the first reconnect to the broker (default 200), doubling...
    mqttBackoffCap?: number // ...up to this (default 5000)
}

// The keys new Gateway() takes; any other is refused (options.ts). Its own
// are not passed on to its Server.
const { epochFor: _, idProblem: __, ...SERVER_KEYS_OF_GATEWAY } = SERVER_KEYS
const OWN_KEYS = { mqtt: true, brokerPort: true, brokerHost: true, name: true, mqttBackoffFirst: true, mqttBackoffCap: true } as const
const GATEWAY_KEYS: OptionKeys<GatewayOptions> = { ...SERVER_KEYS_OF_GATEWAY, ...OWN_KEYS }

// The packet ids of up lines are link ids + 1 (1..256); MQTT.js numbers
// its other packets (subscriptions, status) above them. Far above: MQTT.js
// keeps packets in flight in plain objects keyed by packet id (outgoing,
// messageIdToTopic), and V8 stores such keys as an array as long as the
// largest one unless it lies over 1024 past the array's end (then as a
// hash). From 1000, each idle board kept two arrays of ~1,000 slots, 24 KB.
const FIRST_OTHER_ID = 4096
// What a board session uses of MQTT.js beyond its public API.
interface MqttInternals {
    outgoing: Record<number, { volatile: boolean; cmd: string; cb: (err?: Error) => void }>
    _sendPacket(packet: Record<string, unknown>, cb?: (e?: Error) => void, ...rest: unknown[]): void
}

// The up lines' packet ids (link id + 1).
function isUpPid(pid: number): boolean {
    return pid >= 1 && pid <= 256
}

// MQTT.js's store of a board session, without the up lines: the session
// sends those again itself, all at once on CONNACK (BoardSession.resend).
// MQTT.js resends its store one QoS 2 exchange at a time, each waiting for
// its PUBCOMP, which the broker's resent down lines and the board's
// back-pressure on them hold up: under load a reconnected session sent
// one or two up lines a second, and none at all while cuts came faster.
// Deleting an up id (on PUBCOMP) succeeds, though it was never put.
class OwnStore extends Store {
    override put(packet: Parameters<Store["put"]>[0], cb: Parameters<Store["put"]>[1]): this {
        if (!isUpPid(packet.messageId ?? 0)) return super.put(packet, cb)
        cb?.()
        return this
    }
    override del(packet: Parameters<Store["del"]>[0], cb: Parameters<Store["del"]>[1]): this {
        if (!isUpPid(packet.messageId ?? 0)) return super.del(packet, cb)
        cb(undefined, packet as never)
        return this
    }
}

// MQTT.js traces each step of each packet through `debug` (DEBUG=mqttjs*),
// a few us per packet even when off: off unless asked for.
const MQTT_TRACE = /mqttjs/.test(process.env["DEBUG"] ?? "") ? undefined : () => undefined

// Down lines a board's link holds at most (well under maxQueuedLines).
const DOWN_INFLIGHT = 256
// Packet ids a board's down lines may pass by unwritten (messages refused
// here) before the next line's id would leave the 128 ids the board's
// de-duplication set clears ahead of its newest (dedup.ts); at this many
// its link restarts in a new epoch instead.
const SKIP_LIMIT = 100
// The largest send window a board may have (config.ts: window, 1..120).
const MAX_WINDOW = 120
// An MQTT connection up this long resets its back-off; one the broker closes
// sooner counts as a failure (a broker that accepts and then drops it,
// another client with its client id: without this, two fought many times a
// second).
const STABLE_MS = 10000
// How long a link restart waits for the broker to close the board's MQTT
// connection after its FIN (BoardSession.endGracefully).
const RESTART_CONFIRM_MS = 5000
// Down packets remembered per board (dup check; a resend of a line not yet
// ACKed by the board waits for it)...
const DOWN_RECORD = 512
// ...and at most, counting those not yet PUBACKed (recordDown).
const DOWN_RECORD_MAX = 4 * DOWN_RECORD
const DOWN_RECORD_SCAN = 64
// The payload of every will (a board's, the gateway's): one Buffer, which
// MQTT.js only reads.
const OFFLINE = Buffer.from("offline")
// Link records kept per maxClients: every gateway reads every board's, so
// a fleet of this many full gateways fits; beyond it, the least recently
// updated record of an id this gateway does not hold is dropped
// (docs/gateway.md, "Board ids come and go").
const RECORDS_PER_CLIENT = 4
// How long ending an evicted id's broker session may take.
const WIPE_MS = 10000

// The packet ids of the up lines that may come just before the line with
// link id `first`, within the largest window. A link numbers 00 once, for
// its first line, then 01..ff round and round: before 01 comes 00 the first
// time round and ff every later time, so both are in (MAX_WINDOW + 1 ids).
export function stalePacketIds(first: number): number[] {
    const pids: number[] = []
    let id = first
    for (let i = 0; i < MAX_WINDOW; i++) {
        if (id === 1) pids.push(1) // link id 00
        id = id <= 1 ? 255 : id - 1
        pids.push(id + 1)
    }
    return pids
}

// Numbers MQTT.js's own packets (subscribe, status) above the up lines' ids.
class PacketIds {
    private used = new Set<number>()
    private last = FIRST_OTHER_ID
    private counter = FIRST_OTHER_ID
    allocate(): number | null {
        for (let i = 0; i < 65535 - FIRST_OTHER_ID; i++) {
            this.counter = this.counter >= 65535 ? FIRST_OTHER_ID : this.counter + 1
            if (!this.used.has(this.counter)) {
                this.used.add(this.counter)
                return (this.last = this.counter)
            }
        }
        return null
    }
    getLastAllocated(): number | null {
        return this.last
    }
    register(id: number): boolean {
        if (this.used.has(id)) return false
        this.used.add(id)
        return true
    }
    deallocate(id: number): void {
        this.used.delete(id)
    }
    clear(): void {
        this.used.clear()
    }
}

// A QoS 2 PUBLISH (MQTT 3.1.1) in one buffer, as mqtt-packet writes it in
// 6 pieces.
/** @internal */
export function publishBytes(topic: Buffer, payload: string, pid: number, dup: boolean): Buffer {
    const size = Buffer.byteLength(payload)
    const rest = 2 + topic.length + 2 + size
    const b = Buffer.allocUnsafe(1 + (rest < 128 ? 1 : rest < 16384 ? 2 : rest < 2097152 ? 3 : 4) + rest)
    b[0] = dup ? 0x3c : 0x34
    let i = 1
    for (let n = rest; ; ) {
        const digit = n % 128
        n = Math.floor(n / 128)
        b[i++] = n > 0 ? digit | 128 : digit
        if (n === 0) break
    }
    b.writeUInt16BE(topic.length, i)
    topic.copy(b, i + 2)
    i += 2 + topic.length
    b.writeUInt16BE(pid, i)
    b.write(payload, i + 2, size, "utf8")
    return b
}

// A PUBREL (MQTT 3.1.1).
/** @internal */
export function pubrelBytes(pid: number): Buffer {
    const b = Buffer.allocUnsafe(4)
    b[0] = 0x62
    b[1] = 2
    b.writeUInt16BE(pid, 2)
    return b
}

// mqtt-packet corks a stream per packet and uncorks it on the next tick
// (PUBLISH, PUBREL and PUBACK go as one buffer written here, not corked),
// and MQTT.js handles the packets of one read one tick apart: each packet
// left in its own system call (2 per up line with 64 in flight). Corked
// until setImmediate, which comes after every tick and microtask of this
// turn, all packets a turn sends (PUBLISHes of a board's burst, the
// PUBRELs of a read full of PUBRECs) leave in one. The PUBRELs then leave
// after the ACKs to the board: a gateway that dies between the two leaves
// lines PUBREC'd, which the next one releases (releaseStale).
const corkedStreams = new WeakSet<object>()
// The packets this gateway or MQTT.js answers at once (connack: the
// session's resends of its up lines, MQTT.js's of its store).
const ANSWERED: Record<string, boolean> = { publish: true, pubrec: true, pubrel: true, connack: true }
function corkTurn(c: MqttClient): void {
    const s = c.stream as unknown as { cork?: () => void; uncork?: () => void } | undefined
    if (!s || !s.cork || corkedStreams.has(s)) return
    corkedStreams.add(s)
    s.cork()
    setImmediate(() => {
        corkedStreams.delete(s)
        s.uncork!()
    })
}

// A down packet passed on: its payload's key (a record holds up to
// DOWN_RECORD of them per board, and a payload may be 64 KB), its write,
// and whether its PUBACK was sent: until then the broker cannot use its
// packet id for another message, so one that comes with it is a resend,
// DUP flag or not (Aedes sends a session's messages again without it).
interface DownRecord {
    key: string
    done: Promise<void>
    pubacked: boolean
}

// Payloads up to this many bytes are their own key: a digest costs more CPU
// than the rest of a short line's way to the board.
const RAW_KEY_BYTES = 64

// A payload's key: the bytes themselves ("=" and latin1, one character a
// byte) or, for a longer one, its digest (base64, which never starts with "=").
function payloadKey(payload: Buffer): string {
    if (payload.length <= RAW_KEY_BYTES) return "=" + payload.toString("latin1")
    return createHash("sha256").update(payload).digest("base64")
}

// One board's side of the gateway: its MQTT session while its link is up,
// the up lines not yet taken by the broker, the down packets passed on.
class BoardSession {
    private mqtt: MqttClient | undefined
    private upInFlight = new Map<number, HeldLine>() // packet id -> line, until PUBCOMP
    // Lines whose packet id is still in flight (a restarted board), and every
    // line after the first of them: published in order as the ids come free.
    private upWaiting: HeldLine[] = []
    private settling: HeldLine[] = [] // PUBREC'd, ACKed to the board in a microtask (settleSoon)
    private upRecd = new Set<number>() // packet ids in upInFlight PUBREC'd: resent as PUBREL
    private upWritten = new Set<number>() // packet ids in upInFlight written once: resent with DUP
    private upLostWithSession = 0 // upRecd's size at the last CONNACK without a session
    // The stream whose CONNACK this session answered with its resends
    // (resend): up lines and PUBRELs are written only there, after them.
    private ready: unknown
    private down = new Map<number, DownRecord>()
    private lastDownPid = -1 // packet id of the last down line written (pidIds), -1: none yet
    private handledIds = new HandledIds() // down packet ids handled (on Mosquitto 2: Gateway.continuous)
    // Down packet id -> what its PUBACK waits for, and the stream it came
    // on: a PUBACK goes only there (on a later connection the broker sends
    // the packet again, and its own PUBACK follows the board's ACK).
    private pubackAfter = new Map<number, { after: Promise<void>; stream: unknown }>()
    private pubacks: number[] = [] // down packet ids to PUBACK at the end of this tick
    // Down lines written to the link and not yet ACKed by the board: over
    // DOWN_INFLIGHT, MQTT.js is not told to read on (TCP slows the broker),
    // so the link's queue never fills (a full queue would refuse the line).
    private downPending = 0
    // Down lines written here whose PUBACK has not gone on a live connection
    // (the board has not ACKed them, or their connection went first): a
    // link restart waits for these, else the broker sends them again in
    // the new epoch and the board takes them as new.
    private unPubacked = new Set<number>()
    private downBytes = 0 // ... and their bytes: under the link's maxQueuedBytes
    private downWaiting: Array<() => void> = []
    // Set: this session's link restarts once the lines written are ACKed
    // (restartWhenSettled), and no more are taken from the broker.
    private restartWhy: string | undefined
    private restarting = false // restartNow called: waiting for the broker, then restartLink
    private backoff: Backoff
    private upAt = -1 // when its MQTT connection came up, -1: not up
    private subscribing = 0 // connects of its MQTT connection, for subscribeDown
    private closed = false
    private releasedStale = false
    // Packet ids released before the first line a session holds (the stale
    // ids, or every id for a restarted board) whose PUBCOMP has not come
    // (sent again on each new MQTT session), and what waits for them.
    private releasing = new Set<number>()
    private released: () => void = () => undefined
    everConnected = false
    // Down lines go with message id = from their packet id, in an epoch the
    // next gateway continues (decided when the link first comes up).
    private pidIds: boolean | undefined
    // This Connection continues an epoch from the broker's record: the board
    // may hold ids of it.
    private fromRecord: boolean
    private child: Logger | undefined // the board's logger, made when first used
    private upTopic: { text: string; bytes: Buffer } | undefined // made when the first up line goes

    constructor(
        readonly gw: Gateway,
        readonly conn: Connection,
        private parentLog: Logger,
    ) {
        this.backoff = new Backoff(gw.backoffFirst, gw.backoffCap)
        this.fromRecord = gw.epochs.get(conn.id) === conn.epoch
        void this.upLoop()
    }

    // Lines about this board (with its id): most idle boards never log.
    private get log(): Logger {
        return (this.child ??= this.parentLog.child({ client: this.conn.id }))
    }

    // The board's link is up: open (or reopen) its MQTT session.
    // Not while a link restart waits for the broker to read this
    // session's PUBACKs (endGracefully): a new client would take the
    // session over first, and the broker drop what it had not read.
    open(): void {
        if (this.mqtt || this.closed || this.restarting) return
        const id = this.conn.id
        // Only a devs-iot board keeps its de-duplication across sockets by
        // epoch; a v1 board clears it on 00, which these ids never send.
        this.pidIds ??= this.gw.continuous && this.conn.peer === "devs-iot"
        if (this.pidIds) this.gw.recordEpoch(id, this.conn.epoch)
        const ids = new PacketIds()
        const opts: IClientOptions = {
            clientId: sessionClientId(id),
            clean: false,
            protocolVersion: 4,
            reconnectPeriod: this.gw.backoffFirst,
            connectTimeout: 10000,
            keepalive: 30,
            // Else MQTT.js clears and sets its ping timer on every PUBREC,
            // PUBCOMP and PUBACK (2 us of CPU per up line); a PINGREQ every
            // 30 s on a busy session costs nothing.
            reschedulePings: false,
            messageIdProvider: ids as never,
            outgoingStore: new OwnStore(),
            log: MQTT_TRACE,
            will: { topic: boardTopic(id, "status"), payload: OFFLINE, qos: 1, retain: true },
            ...this.gw.mqttAccess(),
        }
        const c = mqttConnect(this.gw.brokerUrl, opts)
        this.mqtt = c
        c.handleMessage = (packet, done) => this.onDown(c, packet as IPublishPacket, done)
        // MQTT.js reads a session's next packet only once the last one's
        // PUBACK is sent: one down line per board round trip, and a PINGRESP
        // stuck behind a slow board. So the PUBACK of a down line is held
        // here until the board ACKed it, while MQTT.js is told it went.
        const internals = c as unknown as MqttInternals
        const send = internals._sendPacket.bind(c)
        internals._sendPacket = (packet: Record<string, unknown>, cb?: (e?: Error) => void, ...rest: unknown[]) => {
            if (packet["cmd"] === "pubrel" && isUpPid(packet["messageId"] as number)) {
                // An up line's (MQTT.js answering its PUBREC, or release):
                // written now if this stream had its resends, else left to
                // the next CONNACK's (upRecd, releasing).
                cb?.()
                if (this.isReady(c)) c.stream.write(pubrelBytes(packet["messageId"] as number))
                return
            }
            const held = packet["cmd"] === "puback" ? this.pubackAfter.get(packet["messageId"] as number) : undefined
            if (held === undefined) return send(packet, cb, ...rest)
            this.pubackAfter.delete(packet["messageId"] as number)
            cb?.()
            held.after.then(
                () => c.stream === held.stream && this.puback(c, packet["messageId"] as number),
                () => undefined, // ECLOSED: the board went elsewhere; never PUBACKed here
            )
        }
        c.on("packetreceive", (p) => {
            // The answers to this read (PUBRELs, PUBACKs, ...) leave together.
            // A PUBCOMP, PUBACK or SUBACK has none: no cork and setImmediate.
            if (ANSWERED[p.cmd] === true) corkTurn(c)
            // A refused CONNECT's CONNACK says no session too, of a session the broker still has.
            if (p.cmd === "connack" && (p as { returnCode?: number }).returnCode === 0) {
                // A new broker session numbers from 1 again: what the old one's ids were says
                // nothing (the broker sends none of its packets again; a board whose down ids
                // come from packet ids has its link restarted by the connect handler).
                // Up lines the broker had taken (PUBREC, ACKed to the board) and
                // not yet delivered (no PUBCOMP) went with a lost session. Counted
                // here: the resend's PUBRELs get PUBCOMPs before 'connect' may come.
                this.upLostWithSession = (p as { sessionPresent?: boolean }).sessionPresent === true ? 0 : this.upRecd.size
                if ((p as { sessionPresent?: boolean }).sessionPresent !== true) {
                    this.handledIds = new HandledIds()
                    this.down.clear()
                    this.unPubacked.clear()
                }
                if (this.mqtt === c) this.resend(c)
            }
            // PUBREC: the broker holds the line and delivers it once, on PUBREL: ACK the board.
            if (p.cmd === "pubrec" && p.messageId !== undefined) {
                const h = this.upInFlight.get(p.messageId)
                if (h) {
                    this.upRecd.add(p.messageId)
                    this.settleSoon(h)
                }
            }
        })
        c.on("connect", (connack) => {
            this.upAt = clock()
            this.backoff.linkUp(this.upAt)
            const upLost = this.upLostWithSession > 0 ? `; ${this.upLostWithSession} up lines it had taken and not yet delivered may be lost` : ""
            if (this.pidIds && !connack.sessionPresent && (this.fromRecord || this.everConnected)) {
                // A new session numbers its packets from 1 again: ids the board
                // may have seen in this epoch. Its link restarts in a new epoch.
                this.gw.restartLink(id, `the broker has no session for this board: its link restarts in a new epoch${upLost}`)
                return
            }
            if (this.everConnected && !connack.sessionPresent)
                this.log.warn({ code: "session-lost" }, `the broker did not keep this board's MQTT session: down lines queued for it while it was away are lost${upLost} (run the broker with persistence: docs/gateway.md)`)
            this.everConnected = true
            this.subscribeDown(c, ++this.subscribing, new Backoff(this.gw.backoffFirst, this.gw.backoffCap))
        })
        c.on("close", () => {
            if (this.mqtt === c) this.ready = undefined
            if (this.closed || this.mqtt !== c) return
            const up = this.upAt < 0 ? -1 : clock() - this.upAt
            this.upAt = -1
            this.backoff.linkDown(clock(), STABLE_MS)
            const d = this.backoff.next(Math.random())
            c.options.reconnectPeriod = d
            if (up >= 0 && up < STABLE_MS && this.backoff.shouldReport())
                this.gw.warn(this.log, { code: "mqtt-error" }, `MQTT session of ${id} closed by the broker ${up} ms after it came up; retrying in ${d} ms (the board moved to another gateway, or another client uses its client id ${sessionClientId(id)})`)
        })
        c.on("error", (e) => this.gw.warn(this.log, { code: "mqtt-error" }, `MQTT session of ${id}: ${e.message}; retrying`))
        // Lines held from an earlier session go again with their packet ids
        // (resend): the broker's QoS 2 state knows the ones it already stored.
        for (const [pid, h] of this.upInFlight) this.send(c, pid, h)
    }

    // On CONNACK, before anything else is written on the new stream: in
    // one write and in order, a PUBREL for each id being released and each
    // up line PUBREC'd, the PUBLISH of each other up line in flight (DUP if
    // it was written before). Up lines written after them reach subscribers
    // after them. The broker answers a PUBLISH it already holds with
    // PUBREC, a PUBREL of an id it holds nothing under with PUBCOMP.
    private resend(c: MqttClient): void {
        const client = c as unknown as MqttInternals
        const topic = this.topicBytes()
        const parts: Buffer[] = []
        for (const pid of this.releasing) {
            if (this.upInFlight.has(pid)) continue
            this.registerPubrel(client, pid)
            parts.push(pubrelBytes(pid))
        }
        for (const [pid, h] of this.upInFlight) {
            if (this.upRecd.has(pid)) parts.push(pubrelBytes(pid))
            else {
                parts.push(publishBytes(topic.bytes, h.payload, pid, this.upWritten.has(pid)))
                this.upWritten.add(pid)
            }
        }
        this.ready = c.stream
        if (parts.length > 0) c.stream.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts))
    }

    // Up lines and their PUBRELs may be written on `c`'s stream now.
    private isReady(c: MqttClient): boolean {
        return this.mqtt === c && this.ready !== undefined && this.ready === c.stream && (c.stream as { destroyed?: boolean }).destroyed !== true
    }

    private topicBytes(): { text: string; bytes: Buffer } {
        return (this.upTopic ??= { text: boardTopic(this.conn.id, "up"), bytes: Buffer.from(boardTopic(this.conn.id, "up")) })
    }

    // "online" once the down topic is subscribed: lines sent from then on
    // reach the board. A refused subscription is asked again with back-off
    // while this connection lasts (`round`: its connect), not left until the
    // board next reconnects: a broker's ACL may be fixed meanwhile.
    private subscribeDown(c: MqttClient, round: number, backoff: Backoff): void {
        const topic = boardTopic(this.conn.id, "down")
        c.subscribe(topic, { qos: 1 }, (err, granted) => {
            if (this.mqtt !== c || this.subscribing !== round) return
            if (err) {
                const d = backoff.next(Math.random())
                if (backoff.shouldReport()) this.log.error({ code: "subscribe", failures: backoff.count }, `subscribing to ${topic} failed: ${err.message}; asking again in ${d} ms (down lines reach the board once it is subscribed)`)
                setTimeout(() => this.mqtt === c && this.subscribing === round && c.connected && this.subscribeDown(c, round, backoff), d).unref()
                return
            }
            if (granted && granted[0] && granted[0].qos !== 1) this.log.warn({ code: "qos-downgraded" }, `the broker granted QoS ${granted[0].qos} on ${topic}, not 1: down lines may be lost`)
            c.publish(boardTopic(this.conn.id, "status"), "online", { qos: 1, retain: true })
        })
    }

    // `c` is this session's client, connected, on a stream not yet
    // destroyed: MQTT.js hands on packets, and takes writes, after the
    // stream's error or close.
    private live(c: MqttClient): boolean {
        return this.mqtt === c && c.connected && (c.stream as { destroyed?: boolean }).destroyed !== true
    }

    // The PUBACKs of down lines the board ACKed in one tick leave in one
    // buffer at its end, 4 bytes each (through MQTT.js, each was 3 writes
    // to the stream and 3 pieces in the system call). On a later connection
    // the broker sends the lines again (DUP) and gets their PUBACKs then.
    private puback(c: MqttClient, pid: number): void {
        if (!this.live(c)) return
        this.pubacks.push(pid)
        if (this.pubacks.length > 1) return
        process.nextTick(() => {
            const pids = this.pubacks
            this.pubacks = []
            if (!this.live(c)) return
            const b = Buffer.allocUnsafe(4 * pids.length)
            for (let i = 0; i < pids.length; i++) {
                const pid = pids[i]!
                const r = this.down.get(pid)
                if (r) r.pubacked = true
                this.unPubacked.delete(pid)
                b[4 * i] = 0x40 // PUBACK
                b[4 * i + 1] = 2
                b.writeUInt16BE(pid, 4 * i + 2)
            }
            c.stream.write(b)
            if (this.restartWhy !== undefined) this.restartIfSettled()
        })
    }

    // MQTT.js handles the PUBRECs of one read one tick apart, and the link
    // sends what a tick settled in one write. Node runs every queued tick
    // before the microtasks, so settled together in a microtask, their ACKs
    // leave in one write, and before the PUBRELs (corkTurn's setImmediate).
    private settleSoon(h: HeldLine): void {
        this.settling.push(h)
        if (this.settling.length > 1) return
        queueMicrotask(() => {
            const lines = this.settling
            this.settling = []
            for (const l of lines) this.conn.settle(l)
        })
    }

    // The board's link is down: drop its MQTT session without DISCONNECT,
    // so the broker publishes its will ("offline") and keeps what is not
    // acknowledged (un-PUBACKed down lines go again to whoever holds it next).
    drop(): void {
        const c = this.mqtt
        this.mqtt = undefined
        // The next open() sends every line in flight again, in order (resend).
        this.ready = undefined
        c?.end(true)
    }

    close(): void {
        this.closed = true
        this.drop()
        this.released() // the up loop goes on to find its Connection closed
    }

    private async upLoop(): Promise<void> {
        while (!this.closed) {
            let h: HeldLine
            try {
                h = await this.conn.hold()
            } catch {
                return // the Connection was closed
            }
            this.gw.counts.upHeld++
            if (!this.releasedStale) await this.releaseStale(h.kept.id)
            const pid = h.kept.id + 1
            if (this.upWaiting.length === 0 && !this.upInFlight.has(pid)) this.publish(pid, h)
            else this.upWaiting.push(h)
        }
    }

    // The first line this session holds is the board's oldest not ACKed
    // (a board resends in order). Lines with the WINDOW ids before it were
    // ACKed to the board, so the broker has them; a gateway that died
    // between PUBREC and PUBREL left them waiting for a PUBREL: send it.
    // For an id the broker holds nothing under, it just answers PUBCOMP.
    // A first line 00 of a board whose epoch shows a new life: releaseLife.
    // A v1 board has no epoch: a first 00 on its socket is a restart, the
    // rule its link already keeps (fault 1; protocol.md, "The MQTT gateway").
    private async releaseStale(first: number): Promise<void> {
        this.releasedStale = true
        const epoch = this.conn.peerEpoch ?? ""
        if (first === 0 && epoch !== "" && boardEpochProblem(epoch) === "" && this.gw.boardEpochs.get(this.conn.id) !== epoch) return this.releaseLife(epoch)
        if (first === 0 && this.conn.peer === "v1") return this.releaseLife(undefined)
        // Oldest first: the broker delivers each on its PUBREL.
        await this.release(stalePacketIds(first).reverse())
    }

    // A PUBREL for each of `pids` without a line of its own in flight, and
    // their PUBCOMPs waited for, so that what they release reaches
    // subscribers before the line that comes next. Sent now if the session
    // is ready, else (and again after a cut) by the next CONNACK's resend.
    private async release(pids: Iterable<number>): Promise<void> {
        for (const pid of pids) if (!this.upInFlight.has(pid)) this.releasing.add(pid)
        if (this.releasing.size === 0) return
        const all = new Promise<void>((r) => (this.released = r))
        const c = this.mqtt
        if (c) for (const pid of [...this.releasing]) this.sendPubrel(c, pid)
        await all
    }

    // A board's new life reuses packet ids from 1, and the broker drops a
    // line it still holds under a reused id ("Reused message ID"), though
    // the board had its ACK. So before the first line of a new life: a
    // PUBREL for every id (1..256), then the board's epoch in its link
    // record, then the line. A gateway that dies before the record leaves
    // the next one to release them all again (nothing of the new life is in
    // the broker yet); after it, the next one sees the same life and keeps
    // to stalePacketIds: lines of the life after 00 may be in the broker
    // PUBREC'd and not yet ACKed to the board, and one released there and
    // then resent by the board would go out twice. A v1 board (no epoch)
    // has no record: each first 00 on a socket releases them all.
    private async releaseLife(epoch: string | undefined): Promise<void> {
        this.log.info({ code: "new-life", epoch: epoch ?? "(v1)" }, "a new life of this board: releasing every packet id an earlier life may have left in the broker before its first line")
        const pids: number[] = []
        for (let pid = 1; pid <= 256; pid++) pids.push(pid)
        await this.release(pids)
        if (!this.closed && epoch !== undefined) await this.gw.recordBoardEpoch(this.conn.id, epoch)
    }

    // A PUBREL for an up packet id, registered in `outgoing` for its
    // PUBCOMP; written now if the session is ready, else by the next
    // CONNACK's resend (which sends it again after a cut too). An id with
    // a packet of its own in flight needs none.
    private sendPubrel(c: MqttClient, pid: number): void {
        const client = c as unknown as MqttInternals
        if (client.outgoing[pid]) return this.releasedOne(pid)
        this.registerPubrel(client, pid)
        if (this.isReady(c)) {
            corkTurn(c)
            c.stream.write(pubrelBytes(pid))
        }
    }

    private registerPubrel(client: MqttInternals, pid: number): void {
        if (client.outgoing[pid]) return
        client.outgoing[pid] = {
            volatile: false,
            cmd: "pubrel",
            // An error (MQTT.js flushes only a clean client that does not reconnect): the next resend sends it again.
            cb: (err?: Error) => err || this.releasedOne(pid),
        }
    }

    private releasedOne(pid: number): void {
        if (this.releasing.delete(pid) && this.releasing.size === 0) this.released()
    }

    // Publishes the waiting lines, in order, up to the first whose packet id is in flight.
    private publishWaiting(): void {
        while (this.upWaiting.length > 0 && !this.upInFlight.has(this.upWaiting[0]!.kept.id + 1)) {
            const h = this.upWaiting.shift()!
            this.publish(h.kept.id + 1, h)
        }
    }

    private publish(pid: number, h: HeldLine): void {
        this.upInFlight.set(pid, h)
        this.upRecd.delete(pid)
        this.upWritten.delete(pid)
        if (this.mqtt) this.send(this.mqtt, pid, h)
    }

    // Publishes with the packet id chosen here (MQTT.js numbers its own
    // publishes itself), registered in `outgoing` for the PUBREC/PUBCOMP as
    // MQTT.js's publish() does, but not in its store: after a reconnect
    // this session sends it again itself (resend).
    private send(c: MqttClient, pid: number, h: HeldLine): void {
        const client = c as unknown as MqttInternals
        const done = (err?: Error) => {
            if (err) {
                this.log.error({ code: "publish" }, `up line refused by the broker: ${err.message}`)
                return
            }
            if (this.upInFlight.get(pid) !== h) return
            this.upInFlight.delete(pid)
            this.upRecd.delete(pid)
            this.upWritten.delete(pid)
            this.gw.counts.upDone++
            this.publishWaiting()
        }
        client.outgoing[pid] = { volatile: false, cmd: "publish", cb: done }
        // Not ready: the next CONNACK's resend writes it.
        if (!this.isReady(c)) return
        corkTurn(c)
        this.upWritten.add(pid)
        c.stream.write(publishBytes(this.topicBytes().bytes, h.payload, pid, false))
    }

    // A down message: PUBACKed (done) once the board ACKed it. MQTT.js hands
    // messages of one session over in order. To a devs-iot board they go
    // several at a time (wait off): its link keeps their order even when
    // it drops one for a full queue
    // (docs/protocol.md, "Quality of service"). To a v1 board, one at a
    // time (wait). A line whose link id (from its packet id) does not
    // follow the last one also waits: with others in flight, a skip of ids
    // could pass the board's de-duplication window.
    private onDown(c: MqttClient, packet: IPublishPacket, done: (e?: Error) => void): void {
        // MQTT.js hands on the rest of its last read after the stream's
        // error or 'close' (hundreds of packets): never PUBACKed, the broker
        // sends them again on the next connection. Passed on, they filled
        // the record of down packets.
        if (!this.live(c)) return
        const id = this.conn.id
        const payload = downLine(Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload))
        const cfg = this.gw.server.cfg
        const pid = packet.messageId ?? 0
        // A resend of a packet handled here whose record went (its PUBACKs
        // lost on connections cut before the broker read them, while more
        // lines came than the record keeps): its PUBACK, not a second
        // write, nor a link restart for an id far behind the last one.
        if (this.gw.continuous && packet.dup && pid !== 0 && !this.down.has(pid) && this.handledIds.has(pid)) {
            if (this.parentLog.isLevelEnabled("debug")) this.log.debug({ packet: pid, dup: true }, "down packet handled before, its record gone: PUBACKed, not written again")
            this.gw.counts.downResends++
            this.pubackAfter.delete(pid) // one left on an earlier connection would hold this PUBACK
            this.unPubacked.delete(pid)
            return done()
        }
        const seen = this.resendOf(pid, packet.dup, payload)
        // Restarting: not PUBACKed, so the broker sends it again in the new
        // epoch. But a resend of a line written here is answered (its PUBACK
        // went with a connection): the restart waits for it (unPubacked).
        if (this.restartWhy !== undefined && seen === undefined) return
        // The retain flag is set only on a copy sent for a SUBSCRIBE (the
        // message itself came with it clear), which this session makes each
        // time it connects: the line would reach the board again each time.
        if (packet.retain) return this.refuse(pid, packet.topic, "a retained message, sent again on each subscribe (publish down lines without retain; clear it with an empty retained message)", done)
        const problem = payloadProblem(payload, Math.min(cfg.maxLineBytes, cfg.maxQueuedBytes)) || this.overBoardLimit(payload.length)
        if (problem !== "") return this.refuse(pid, packet.topic, problem, done)
        const text = payload.toString("utf-8")
        // Checked first: the fields and the board's logger cost more than the rest of a short line's way.
        if (this.parentLog.isLevelEnabled("debug")) this.log.debug({ packet: pid, dup: packet.dup, bytes: payload.length }, "down line from the broker")
        // No packet id, so no message id the next gateway could repeat.
        if (this.pidIds && pid === 0) return this.refuse(pid, packet.topic, "published at QoS 0 (publish down lines at QoS 1 or 2)", done)
        let p: Promise<void>
        let fresh = false
        let left: (() => void) | undefined
        if (seen !== undefined) {
            this.gw.counts.downResends++
            p = seen.done
        } else {
            const opts: WriteOptions = { qos: true, wait: this.conn.peer !== "devs-iot" }
            if (this.pidIds) {
                const skip = this.skipTo(pid)
                if (skip > SKIP_LIMIT) {
                    this.restartWhenSettled(`down packet id ${pid} is ${skip} ids past the last one written to the board, more than its de-duplication set covers: its link restarts in a new epoch`)
                    return
                }
                opts.id = wireId(pid)
                if (skip !== 1) opts.wait = true
                this.lastDownPid = pid
            }
            if (this.gw.continuous && pid !== 0) this.handledIds.handled(pid)
            p = this.conn.write(text, opts)
            fresh = true
            this.downPending++
            this.downBytes += payload.length
            left = () => {
                this.downPending--
                this.downBytes -= payload.length
                while (!this.downFull() && this.downWaiting.length > 0) this.downWaiting.shift()!()
                if (this.restartWhy !== undefined) this.restartIfSettled()
            }
            if (pid !== 0) {
                this.recordDown(pid, { key: payloadKey(payload), done: p, pubacked: false })
                this.unPubacked.add(pid)
            }
        }
        // A fresh line leaves the link (left) before its outcome is handled.
        const delivered = p.then(
            () => {
                left?.()
                // A resend waited for the first write's outcome: counted there.
                if (fresh) this.gw.counts.downDone++
            },
            (e: LinkError) => {
                // Not written to the board: never PUBACKed here (ECLOSED, EQUEUEFULL) or PUBACKed now.
                if (e.code === "ECLOSED" || e.code === "EQUEUEFULL") this.unPubacked.delete(pid)
                left?.()
                if (e.code === "ECLOSED") throw e
                if (e.code === "EQUEUEFULL") {
                    // Not refused, only not taken now: never PUBACKed, so it comes again.
                    this.log.error({ code: "down-queue-full" }, `down line for ${id} not taken: ${e.message}`)
                    this.restartWhenSettled("the board's write queue was full: its link restarts and the broker sends the lines again")
                    throw e
                }
                // A line the link refuses (too long for this board, ...): logged and PUBACKed, so it blocks nothing.
                this.gw.warn(this.log, { code: "bad-down" }, `down line for ${id} refused: ${e.message}`)
            },
        )
        delivered.catch(() => undefined) // ECLOSED is handled where the PUBACK waits
        const stream = c.stream
        if (pid !== 0 && c === this.mqtt) this.pubackAfter.set(pid, { after: delivered, stream })
        // Not on a later connection: its PUBACK could go before the board's ACK.
        if (fresh && this.downFull()) this.downWaiting.push(() => c.stream === stream && done())
        else done()
    }

    // The record of the line `pid` is a resend of (same payload, and DUP or
    // its PUBACK not yet sent: until then the broker cannot reuse the id).
    private resendOf(pid: number, dup: boolean, payload: Buffer): DownRecord | undefined {
        const seen = pid !== 0 ? this.down.get(pid) : undefined
        return seen !== undefined && (dup || !seen.pubacked) && seen.key === payloadKey(payload) ? seen : undefined
    }

    // Over DOWN_RECORD, the oldest record whose PUBACK went goes (its line
    // is settled; on Mosquitto 2 a resend of it is answered from
    // handledIds, and other brokers send one again without DUP, which a
    // PUBACKed record does not match); over DOWN_RECORD_MAX, the oldest
    // anyway. Only the oldest few are looked at: a line's cost.
    private recordDown(pid: number, r: DownRecord): void {
        this.down.delete(pid)
        this.down.set(pid, r)
        if (this.down.size <= DOWN_RECORD) return
        let tries = DOWN_RECORD_SCAN
        for (const [old, o] of this.down) {
            if (this.down.size > DOWN_RECORD_MAX || o.pubacked) {
                this.down.delete(old)
                return
            }
            if (--tries <= 0) return
        }
    }

    // The line limit the board announced, when `bytes` is over it.
    private overBoardLimit(bytes: number): string {
        const max = this.conn.peerLineLimit
        return max > 0 && bytes > max ? `payload of ${bytes} bytes over this board's line limit (${max}, from its hello)` : ""
    }

    // Packet ids from the last down line written to `pid`, or -1 when this
    // session has written none yet.
    private skipTo(pid: number): number {
        return this.lastDownPid < 0 ? -1 : pidDistance(this.lastDownPid, pid)
    }

    // Too many lines or bytes in the link: MQTT.js is not told to read on.
    private downFull(): boolean {
        const cfg = this.gw.server.cfg
        return this.downPending >= Math.min(DOWN_INFLIGHT, cfg.maxQueuedLines) || this.downBytes > cfg.maxQueuedBytes - cfg.maxLineBytes
    }

    // A down message not passed on: logged and PUBACKed, unless its packet
    // id would take the board's next line too far past its last one (the
    // link restarts then). A gateway that has written nothing yet in an
    // epoch it continued cannot know how far that is: it restarts too.
    private refuse(pid: number, topic: string, problem: string, done: () => void): void {
        if (this.pidIds && pid !== 0) {
            const skip = this.skipTo(pid)
            if (skip >= SKIP_LIMIT || (skip < 0 && this.fromRecord)) {
                this.restartWhenSettled(`down message for ${this.conn.id} not passed on (${problem}); its packet id would take the board's next line past its de-duplication set: its link restarts in a new epoch`)
                return
            }
        }
        if (this.gw.continuous && pid !== 0) this.handledIds.handled(pid)
        this.gw.counts.downRefused++
        this.gw.warn(this.log, { code: "bad-down", topic }, `down message for ${this.conn.id} not passed on: ${problem}`)
        done()
    }

    // In a new epoch the board forgets the ids it has seen. So first every
    // line written must be ACKed and its PUBACK sent: one the broker sent
    // again after the restart would reach the board twice.
    private restartWhenSettled(why: string): void {
        if (this.restartWhy !== undefined) return
        this.restartWhy = why
        this.restartIfSettled()
    }

    // Every line written ACKed by the board and its PUBACK written on a
    // live connection (after a cut, on the broker's resend of the line).
    private restartIfSettled(): void {
        if (this.restartWhy !== undefined && this.downPending === 0 && this.unPubacked.size === 0) this.restartNow(this.restartWhy)
    }

    // Once the broker has read the PUBACKs written (endGracefully): one
    // it never got, it sends again to the next session, in the new epoch,
    // and the board takes it as a new line. restartLink alone destroyed the
    // connection: a corked stream's bytes were lost, and with the broker's
    // packets still coming in, the socket reset and Mosquitto dropped what
    // it had not read (in the restart test, a down line of each restart or
    // two reached the board twice).
    private restartNow(why: string): void {
        if (this.restarting) return
        this.restarting = true
        // After the PUBACKs' microtasks and ticks.
        setImmediate(() =>
            void this.endGracefully().then((ok) => {
                if (this.closed) return
                if (!ok) this.log.warn({ code: "link-restart-unconfirmed" }, `link restart: the broker did not close this board's MQTT connection within ${RESTART_CONFIRM_MS} ms of its FIN (or it was down): a down line the board has may reach it again, in the new epoch`)
                this.gw.restartLink(this.conn.id, why)
            }),
        )
    }

    // Ends this session's connection with a FIN after all it wrote, and
    // resolves true once the broker closed its end: it has read everything
    // before the FIN (a broker reads a connection in order). No DISCONNECT:
    // the broker publishes the will. What the broker sends meanwhile is
    // read and dropped (MQTT.js takes nothing more, and stalls on a down
    // message while a restart is pending anyway): un-PUBACKed, it comes
    // again. False after RESTART_CONFIRM_MS, or when not connected.
    private endGracefully(): Promise<boolean> {
        const c = this.mqtt
        if (!c || !this.live(c)) return Promise.resolve(false)
        this.mqtt = undefined // nothing more goes on it; its close is not a lost connection
        const s = c.stream
        return new Promise((resolve) => {
            const finish = (ok: boolean) => {
                clearTimeout(t)
                c.end(true)
                resolve(ok)
            }
            const t = setTimeout(() => finish(false), RESTART_CONFIRM_MS).unref()
            // Closed by an error or a reset: what was written may be unread.
            s.once("close", (hadError?: boolean) => finish(hadError !== true))
            s.unpipe()
            s.resume()
            s.end()
        })
    }
}

// Steps from packet id `from` to `to` (1..65535, then 1 again).
function pidDistance(from: number, to: number): number {
    return (((to - from) % 65535) + 65535) % 65535
}

// The packet id `n` steps after `pid` (before, for a negative n).
function pidStep(pid: number, n: number): number {
    return ((((pid - 1 + n) % 65535) + 65535) % 65535) + 1
}

// How far back from the newest a board session's handled packet ids are
// kept, and how far ahead a packet id counts as ahead of it (half the ids).
const HANDLED_SPAN = 32767
// Runs of ids skipped over kept at most; beyond, the span starts after the oldest.
const HANDLED_GAPS = 32

// The down packet ids a board session handled (wrote to the board, matched
// as a resend, or refused and PUBACKed): every id from `from` to the newest,
// `top`, less the runs it never got (gaps). A DUP packet with one of these
// ids is a broker resend of a packet handled here whose PUBACK did not
// arrive, whatever became of its record (recordDown): it is answered, not
// written again. Mosquitto 2.0 (src/, 2.0.11 to 2.0.20) numbers a session's
// packets when it queues them (subs__send: mosquitto__mid_generate, then
// db__message_insert appends to the session's inflight or queued list),
// 1..65535 then 1 (0 skipped), on across connections (the id counter,
// last_mid, goes to the new connection on a take-over in
// connect__on_authorised, and is saved with persistence); a first send
// goes with DUP clear and marks the message DUP for every later one
// (db__message_write_inflight_out_single). A reconnect sends the
// un-PUBACKed ones again, in list order (db__message_reconnect_reset,
// db__message_write_inflight_out_all). An id in a gap (a first send that
// came late) or outside the span is not taken as handled.
/** @internal */
export class HandledIds {
    private top = -1 // -1: none handled yet
    private from = -1
    private gaps: Array<[number, number]> = [] // [first, last], oldest first

    handled(pid: number): void {
        if (this.top < 0) {
            this.top = this.from = pid
            return
        }
        const d = pidDistance(this.top, pid)
        if (d === 0) return
        if (d <= HANDLED_SPAN) {
            if (d > 1) this.gaps.push([pidStep(this.top, 1), pidStep(pid, -1)])
            this.top = pid
            if (pidDistance(this.from, this.top) > HANDLED_SPAN) this.startAt(pidStep(this.top, -HANDLED_SPAN))
            if (this.gaps.length > HANDLED_GAPS) this.startAt(pidStep(this.gaps[0]![1], 1))
            return
        }
        // An earlier id: one that came late, out of its gap.
        if (!this.inSpan(pid)) return
        const at = this.offset(pid)
        const i = this.gaps.findIndex(([a, b]) => this.offset(a) <= at && at <= this.offset(b))
        if (i < 0) return
        const [a, b] = this.gaps[i]!
        const parts: Array<[number, number]> = []
        if (a !== pid) parts.push([a, pidStep(pid, -1)])
        if (b !== pid) parts.push([pidStep(pid, 1), b])
        this.gaps.splice(i, 1, ...parts)
        if (this.gaps.length > HANDLED_GAPS) this.startAt(pidStep(this.gaps[0]![1], 1))
    }

    has(pid: number): boolean {
        if (this.top < 0 || !this.inSpan(pid)) return false
        const at = this.offset(pid)
        return !this.gaps.some(([a, b]) => this.offset(a) <= at && at <= this.offset(b))
    }

    private offset(pid: number): number {
        return pidDistance(this.from, pid)
    }

    private inSpan(pid: number): boolean {
        return this.offset(pid) <= this.offset(this.top)
    }

    // The span starts at `pid` (in it): gaps before it go.
    private startAt(pid: number): void {
        const shift = this.offset(pid)
        const gaps: Array<[number, number]> = []
        for (const [a, b] of this.gaps) {
            if (this.offset(b) < shift) continue
            gaps.push([this.offset(a) < shift ? pid : a, b])
        }
        this.from = pid
        this.gaps = gaps
        // A gap that reached the span's start leaves it starting after it.
        if (this.gaps.length > 0 && this.gaps[0]![0] === pid) this.startAt(pidStep(this.gaps[0]![1], 1))
    }
}

export class Gateway {
    readonly server: Server
    readonly name: string
    /** @internal */
    readonly backoffFirst: number
    /** @internal */
    readonly backoffCap: number
    /** @internal */
    readonly counts = { upHeld: 0, upDone: 0, downDone: 0, downResends: 0, downRefused: 0, takenOver: 0 }
    brokerUrl = "" // without the user name and password (it is logged)
    // From the URL, decoded: MQTT.js splits "user:pass" at its last ':'.
    private brokerAuth: { username?: string; password?: Buffer } = {}
    // The broker numbers a session's packets on across connections and
    // restarts (Mosquitto, checked by the gateway tests): down message ids
    // may come from packet ids.
    /** @internal */
    continuous = false
    /** @internal */
    readonly epochs = new Map<string, string>() // board id -> epoch of its down lines (linkTopic)
    /** @internal */
    readonly boardEpochs = new Map<string, string>() // board id -> the board's life whose up lines the broker may hold (linkTopic)
    private versionSeen!: () => void
    private versionKnown = new Promise<void>((r) => (this.versionSeen = r))
    private log: Logger
    private opts: GatewayOptions
    private sessions = new Map<string, BoardSession>()
    private control: MqttClient | undefined
    private broker: { net: NetServer; close: () => Promise<void> } | undefined
    private closing = false
    private closed: Promise<void> | undefined // close(), once called
    private warnBudget: LogBudget
    private recordCap: number
    private wipes = new Map<string, MqttClient>() // evicted ids -> a clean connection ending their broker session

    constructor(opts: GatewayOptions = {}) {
        checkOptionKeys(opts, GATEWAY_KEYS, "new Gateway()")
        this.opts = opts
        this.log = opts.logger ?? silentLogger()
        const serverOpts: ServerOptions = Object.fromEntries(Object.entries(opts).filter(([k]) => !Object.hasOwn(OWN_KEYS, k)))
        this.server = new Server({
            ...serverOpts,
            epochFor: (id) => (this.continuous ? this.epochs.get(id) : undefined),
            idProblem: (id) => {
                const p = topicIdProblem(id)
                return p === "" ? "" : `board id cannot be an MQTT topic level: ${p}`
            },
        })
        this.warnBudget = new LogBudget(this.server.limits.maxWarningsPerSecond)
        this.recordCap = RECORDS_PER_CLIENT * this.server.limits.maxClients
        this.name = opts.name ?? `${hostname()}-${process.pid}`
        const nameProblem = topicIdProblem(this.name)
        if (nameProblem !== "") throw new LinkError("ECONFIG", `gateway name: ${nameProblem}`)
        this.backoffFirst = opts.mqttBackoffFirst ?? 200
        this.backoffCap = opts.mqttBackoffCap ?? 5000
        if (!(this.backoffFirst >= 10 && this.backoffCap >= this.backoffFirst && this.backoffCap <= 600000))
            throw new LinkError("ECONFIG", `mqttBackoffFirst must be at least 10 ms and at most mqttBackoffCap, which is at most 600000; got ${show(this.backoffFirst)} and ${show(this.backoffCap)}`)
        if (opts.mqtt !== undefined) {
            const b = brokerAddress(opts.mqtt)
            this.brokerUrl = b.url
            this.brokerAuth = b.auth
        }
        this.server.on("connect", (conn) => this.boardUp(conn))
        this.server.on("disconnect", (conn) => this.sessions.get(conn.id)?.drop())
        // A Connection the server let go of (evicted for room, ...): so does its session.
        this.server.on("forget", (conn, why) => {
            // Evicted for room (not let go for a take-over or a link restart,
            // nor a link that never came up): its record and broker session
            // go too. A stored id dropped with no Connection here (perhaps
            // taken over since) brings no event and keeps them.
            if (why === "evicted" && conn.connects > 0) void this.evicted(conn.id)
            const s = this.sessions.get(conn.id)
            if (s?.conn !== conn) return
            s.close()
            this.sessions.delete(conn.id)
        })
    }

    get port(): number {
        return this.server.port
    }

    // A warning that what apps publish, or each board session's retries,
    // can repeat at any rate: logged at most the server's
    // maxWarningsPerSecond, the next logged one counting those that were not.
    /** @internal */
    warn(log: Logger, fields: { code: string; [k: string]: unknown }, msg: string): void {
        const extra = this.warnBudget.pass(fields.code, performance.now())
        if (extra) log.warn({ ...fields, ...extra }, msg)
    }

    // What every MQTT client of this gateway connects with besides the URL.
    // A refused CONNECT (bad credentials, a client id not allowed) is retried
    // with back-off like a lost connection: MQTT.js would otherwise stop for
    // good, and the boards' lines would wait for ever. Spelled out, not
    // Pick<IClientOptions>: the package's types then do not reach MQTT.js's,
    // which need the DOM library (Worker) that a Node project leaves out.
    /** @internal */
    mqttAccess(): { username?: string; password?: Buffer; reconnectOnConnackError: boolean } {
        return { ...this.brokerAuth, reconnectOnConnackError: true }
    }

    // The embedded broker's port (-1: an external broker).
    get brokerPort(): number {
        const a = this.broker?.net.address()
        return a && typeof a === "object" ? a.port : -1
    }

    // Rejects with ECLOSED once close() was called, also while it starts:
    // what it had opened by then is closed again.
    async start(): Promise<void> {
        if (this.closing) throw new LinkError("ECLOSED", "gateway closed")
        if (this.brokerUrl === "") {
            const host = this.opts.brokerHost ?? "127.0.0.1"
            const broker = await embeddedBroker(host, this.opts.brokerPort ?? 1883, this.log)
            if (this.closing) {
                await broker.close()
                throw new LinkError("ECLOSED", "gateway closed")
            }
            this.broker = broker
            this.brokerUrl = `mqtt://${host}:${this.brokerPort}`
            this.log.info({ broker: this.brokerUrl }, "embedded MQTT broker (Aedes) listening")
            if (!isLoopbackHost(host))
                this.log.warn({ broker: this.brokerUrl, code: "broker-open" }, `the embedded broker listens on ${host} with no authentication and no ACLs: whoever reaches it reads every board's lines, writes to any board and can make this gateway let go of a board; keep it on 127.0.0.1 or run Mosquitto with passwords and ACLs (docs/gateway.md)`)
        }
        if (this.closing) throw new LinkError("ECLOSED", "gateway closed")
        await this.startControl()
        // Which broker it is decides how down lines are numbered: known before boards come.
        if (!this.broker) await Promise.race([this.versionKnown, new Promise((r) => setTimeout(r, 1000))])
        await this.server.listen()
        this.log.info({ port: this.server.port, broker: this.brokerUrl, gateway: this.name }, "gateway listening")
    }

    // Every call returns the same promise.
    close(): Promise<void> {
        return (this.closed ??= this.shut())
    }

    private async shut(): Promise<void> {
        this.closing = true
        for (const s of this.sessions.values()) s.close()
        this.sessions.clear()
        for (const w of this.wipes.values()) w.end(true)
        this.wipes.clear()
        await this.server.close()
        const c = this.control
        this.control = undefined
        if (c) {
            await new Promise<void>((resolve) => {
                const t = setTimeout(() => c.end(true, () => resolve()), 1000)
                c.publish(gatewayTopic(this.name), "offline", { qos: 1, retain: true }, () => {
                    clearTimeout(t)
                    c.end(false, () => resolve())
                })
            })
        }
        await this.broker?.close()
    }

    // The gateway's own connection: its status, and the "took" notices by
    // which a gateway that took a board tells the one that had it to let go.
    private startControl(): Promise<void> {
        const c = mqttConnect(this.brokerUrl, {
            clientId: `devs-iot-gateway-${this.name}`,
            clean: true,
            reconnectPeriod: this.backoffFirst,
            connectTimeout: 10000,
            will: { topic: gatewayTopic(this.name), payload: OFFLINE, qos: 1, retain: true },
            ...this.mqttAccess(),
        })
        this.control = c
        const backoff = new Backoff(this.backoffFirst, this.backoffCap)
        let warnedVersion = false
        let lostLogged = false
        let upAt = -1
        let lastError = "" // told with the next warning: one line per back-off step
        c.on("connect", () => {
            lastError = ""
            upAt = clock()
            backoff.linkUp(upAt)
            if (lostLogged) this.log.info({ broker: this.brokerUrl }, "broker reachable again")
            lostLogged = false
            c.publish(gatewayTopic(this.name), "online", { qos: 1, retain: true })
            const filters = [TOOK_FILTER, LINK_FILTER, "$SYS/broker/version"]
            c.subscribe(filters, { qos: 1 }, (_err, _subs, suback) => {
                // Refused (0x80): without took notices a gateway keeps a board another took; without
                // link records down lines are at-least-once across a gateway kill. The version is optional.
                const codes = ((suback as { granted?: number[] } | undefined)?.granted ?? []).slice(0, 2)
                const refused = filters.filter((_f, i) => ((codes[i] ?? 0) & 0x80) !== 0)
                if (refused.length > 0) this.log.error({ broker: this.brokerUrl, code: "subscribe", refused }, `the broker refused this gateway's subscription to ${refused.join(" and ")}: let the gateways read devs-iot/$gateway/# and devs-iot/$link/# (docs/gateway.md); boards moving between gateways and down lines across a gateway kill are not safe until then`)
            })
        })
        c.on("close", () => {
            if (this.closing) return
            const up = upAt < 0 ? -1 : clock() - upAt
            upAt = -1
            backoff.linkDown(clock(), STABLE_MS)
            const d = backoff.next(Math.random())
            c.options.reconnectPeriod = d
            if (!backoff.shouldReport()) return
            lostLogged = true
            const soon = up >= 0 && up < STABLE_MS ? `; the broker closed it ${up} ms after accepting it: is another gateway running with --name ${this.name} (client id devs-iot-gateway-${this.name})? Each needs its own; else the broker's log says why` : ""
            this.log.warn({ broker: this.brokerUrl, failures: backoff.count, retryIn: d, code: "mqtt-error" }, `broker connection lost or refused${lastError === "" ? "" : ` (${lastError})`}${soon}; retrying in ${d} ms (board lines wait: none is ACKed before the broker has it)`)
        })
        c.on("error", (e) => {
            lastError = e.message
            this.log.debug({ broker: this.brokerUrl, code: "mqtt-error" }, `broker: ${e.message}`)
        })
        c.on("message", (topic, payload) => {
            if (topic.startsWith(`devs-iot/$link/`)) {
                const r = parseLinkRecord(topic, payload)
                if ("problem" in r) return void this.warn(this.log, { code: "bad-link-record" }, `${r.problem}: ignored`)
                this.keep(this.epochs, r.id, r.epoch)
                this.keep(this.boardEpochs, r.id, r.board)
                return
            }
            if (topic === "$SYS/broker/version") {
                const v = payload.toString()
                this.continuous = /^mosquitto version 2\./i.test(v)
                this.versionSeen()
                if (!warnedVersion && /mosquitto/i.test(v)) {
                    warnedVersion = true
                    this.log.warn({ broker: v, code: "broker-settings" }, "Mosquitto: exactly-once needs max_queued_messages above the lines a board may have waiting (default 1000 drops the rest silently) and persistence true; speed needs set_tcp_nodelay true (with Nagle on, lines stall up to 40 ms); this gateway cannot read these settings: check mosquitto.conf (docs/gateway.md)")
                }
                return
            }
            if (!topic.startsWith("devs-iot/$gateway/")) return // a board's status (onlineElsewhere)
            const from = topic.split("/")[2]
            const id = payload.toString()
            if (from === this.name) return
            const s = this.sessions.get(id)
            if (!s) return
            // Another gateway took this board: let go (its socket here, if any, is stale).
            this.counts.takenOver++
            this.log.info({ client: id, by: from }, "board taken over by another gateway: letting go")
            s.close()
            this.sessions.delete(id)
            this.server.forget(id, `taken over by gateway ${from}`)
        })
        return new Promise((resolve) => {
            // The gateway starts whether or not the broker answers: board lines wait.
            const t = setTimeout(resolve, 3000)
            c.once("connect", () => {
                clearTimeout(t)
                resolve()
            })
        })
    }

    // Keeps `epoch` in the broker as the one a board's down lines go in.
    /** @internal */
    recordEpoch(id: string, epoch: string): void {
        if (this.epochs.get(id) === epoch) return
        this.keep(this.epochs, id, epoch)
        this.writeRecord(id)
    }

    // Keeps `epoch` in the broker as the board's life whose up lines it
    // may hold; resolves once the broker has it.
    /** @internal */
    recordBoardEpoch(id: string, epoch: string): Promise<void> {
        if (this.boardEpochs.get(id) === epoch) return Promise.resolve()
        this.keep(this.boardEpochs, id, epoch)
        return this.writeRecord(id)
    }

    // Sets (or, "", deletes) an id's entry as the most recently updated.
    // Over recordCap, the least recently updated goes, skipping (and
    // moving to the end) ids the server holds: their boards come back here.
    private keep(map: Map<string, string>, id: string, value: string): void {
        map.delete(id)
        if (value !== "") map.set(id, value)
        let tries = map.size
        for (const [old, v] of map) {
            if (map.size <= this.recordCap || tries-- <= 0) break
            map.delete(old)
            if (this.server.connection(old) !== undefined) map.set(old, v)
        }
    }

    // The server evicted an idle id: its link record, retained status and
    // broker session go too, else every id that ever came would stay in
    // every gateway and in the broker. It comes back in a new epoch, as
    // from the server's eviction. Unless its status says another gateway
    // holds it (a took notice this one missed while away from the broker).
    private async evicted(id: string): Promise<void> {
        if (await this.onlineElsewhere(id)) return void this.log.info({ client: id }, "evicted id is online through another gateway: its link record and broker session stay")
        if (this.closing || this.server.connection(id) !== undefined) return // back meanwhile
        this.epochs.delete(id)
        this.boardEpochs.delete(id)
        this.control?.publish(linkTopic(id), "", { qos: 1, retain: true })
        this.wipes.get(id)?.end(true)
        // A clean session under its client id ends the one the broker keeps (best effort: lost if the broker is away).
        const c: MqttClient = mqttConnect(this.brokerUrl, { clientId: sessionClientId(id), clean: true, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: WIPE_MS, log: MQTT_TRACE, ...this.mqttAccess() })
        this.wipes.set(id, c)
        const done = () => {
            clearTimeout(t)
            c.end(true)
            if (this.wipes.get(id) === c) this.wipes.delete(id)
        }
        const t = setTimeout(done, WIPE_MS)
        c.on("error", () => undefined)
        c.on("close", done)
        c.once("connect", () => c.publish(boardTopic(id, "status"), "", { qos: 1, retain: true }, done))
    }

    // Whether a board's retained status is "online": its session is up at
    // another gateway. Retained messages come after the SUBACK, before the
    // UNSUBACK (Mosquitto); refused or unanswered: false.
    private onlineElsewhere(id: string): Promise<boolean> {
        const c = this.control
        if (!c?.connected) return Promise.resolve(false)
        const topic = boardTopic(id, "status")
        return new Promise((resolve) => {
            let online = false
            const seen = (t: string, p: Buffer) => t === topic && (online = p.toString() === "online")
            const finish = () => {
                clearTimeout(t)
                c.off("message", seen)
                resolve(online)
            }
            const t = setTimeout(finish, WIPE_MS)
            c.on("message", seen)
            c.subscribe(topic, { qos: 1 }, (err) => (err ? finish() : c.unsubscribe(topic, finish)))
        })
    }

    private writeRecord(id: string): Promise<void> {
        const c = this.control
        if (!c) return Promise.resolve()
        const record = linkRecord(this.epochs.get(id) ?? "", this.boardEpochs.get(id) ?? "")
        return new Promise((resolve) =>
            c.publish(linkTopic(id), record, { qos: 1, retain: true }, (err) => {
                if (err) this.log.warn({ client: id, code: "link-record" }, `link record of ${id} not written: ${err.message}`)
                resolve()
            }),
        )
    }

    // Drops a board's link and session: it reconnects in a new epoch.
    /** @internal */
    restartLink(id: string, why: string): void {
        this.log.warn({ client: id, code: "link-restart" }, why)
        this.epochs.delete(id)
        void this.writeRecord(id)
        this.sessions.get(id)?.close()
        this.sessions.delete(id)
        this.server.forget(id, why)
    }

    // (An id that cannot be a topic level never gets here: idProblem.)
    private boardUp(conn: Connection): void {
        // Back after its eviction: its new session must not be ended.
        this.wipes.get(conn.id)?.end(true)
        this.wipes.delete(conn.id)
        let s = this.sessions.get(conn.id)
        if (s && s.conn !== conn) {
            s.close()
            s = undefined
        }
        if (!s) {
            s = new BoardSession(this, conn, this.log)
            this.sessions.set(conn.id, s)
        }
        s.open()
        this.control?.publish(tookTopic(this.name), conn.id, { qos: 1 })
    }
}

// The broker's URL checked, without its user name and password (which go
// to MQTT.js as options, decoded), and those.
export function brokerAddress(text: string): { url: string; auth: { username?: string; password?: Buffer } } {
    // "host:1883" parses as protocol "host:": say what a URL looks like (not
    // the text itself, which may hold a password).
    const form = text.includes("://") ? "" : "; it starts with mqtt:// (mqtt://host:1883)"
    let u: URL
    try {
        u = new URL(text)
    } catch (e) {
        throw new LinkError("ECONFIG", `mqtt: not a broker URL (${(e as Error).message}${form})`)
    }
    if (!["mqtt:", "mqtts:", "tcp:", "ws:", "wss:"].includes(u.protocol)) throw new LinkError("ECONFIG", `mqtt: not a broker URL (protocol ${u.protocol} is not mqtt:, mqtts:, tcp:, ws: or wss:${form})`)
    const auth: { username?: string; password?: Buffer } = {}
    try {
        if (u.username !== "") auth.username = decodeURIComponent(u.username)
        if (u.password !== "") auth.password = Buffer.from(decodeURIComponent(u.password))
    } catch {
        throw new LinkError("ECONFIG", "mqtt: the user name or password in the broker URL has a bad %-escape")
    }
    if (auth.password !== undefined && auth.username === undefined) throw new LinkError("ECONFIG", "mqtt: the broker URL has a password without a user name")
    u.username = ""
    u.password = ""
    return { url: u.href, auth }
}

// An in-process MQTT broker (Aedes) on a plain TCP listener. Nagle off, as
// docs/gateway.md asks of any broker: with it on, a board writing 64 lines
// at a time stalled on delayed ACKs (40 ms).
// Accept failures after listening (EMFILE) are logged, not thrown (listenOn).
async function embeddedBroker(host: string, port: number, log: Logger): Promise<{ net: NetServer; close: () => Promise<void> }> {
    const { Aedes } = await import("aedes")
    const broker = await Aedes.createBroker()
    const net = createServer({ noDelay: true }, broker.handle as never)
    await listenOn(net, port, host, log, "embedded MQTT broker")
    return {
        net,
        close: () =>
            new Promise<void>((resolve) => {
                net.close()
                broker.close(() => resolve())
            }),
    }
}
