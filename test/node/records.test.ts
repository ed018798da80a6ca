// The delivery state's records as the core's calls reach them (records.ts
// follows the Link and its Sender from outside): each record, in the order
// the store gets it, on the paths the state tests reach rarely or never.
import assert from "node:assert/strict"
import { ClientLink, useStore, type KeptLine, type LinkRecord, type LinkStore, type OwedLine } from "../../src/shared/index.js"
import { SEQ_LIMIT, SEQ_SHIFT } from "../../src/shared/ids.js"
import { Drive, nodeCfg } from "../shared/drive.js"

// A store that logs each call but the link's own record.
class LogStore implements LinkStore {
    log: string[] = []
    links: LinkRecord[] = []
    saveLink(r: LinkRecord): void {
        this.links.push(r)
    }
    putOwed(o: OwedLine): void {
        this.log.push(`owed ${o.key}:${o.seq}`)
    }
    dropOwed(key: number): void {
        this.log.push(`paid ${key}`)
    }
    putKept(k: KeptLine): void {
        this.log.push(`kept ${k.key}:${k.id}:${k.payload.toString()}`)
    }
    dropKept(key: number): void {
        this.log.push(`unkept ${key}`)
    }
}

function recorded(o: object): { d: Drive<ClientLink>; store: LogStore } {
    const store = new LogStore()
    const link = new ClientLink(nodeCfg(o), "cli", "board-1")
    useStore(link, store, undefined)
    return { d: new Drive(link), store }
}

describe("delivery state records (records.ts)", function () {
    it("qos writes owed when written and when sent, paid on their ACK; a write over the peer's limit is paid when it fails; a non-qos write leaves no record", function () {
        const { d, store } = recorded({})
        d.link.write("short", true, false)
        d.link.write("a longer line", true, false)
        d.link.write("no qos", false, false)
        d.link.learnMax(6)
        assert.deepEqual(store.log, ["owed 0:-1", "owed 1:-1", "paid 1"])
        d.open()
        d.take()
        d.feed("\n") // a v1 server: up
        assert.ok(d.link.status())
        assert.equal(d.take(), "00short\n") // toward v1, nothing after 00 until its ACK
        d.feed("00\n")
        assert.equal(d.take(), "01no qos\n")
        assert.deepEqual(store.log.slice(3), ["owed 0:0", "paid 0"])
        assert.equal(store.links[store.links.length - 1]!.nextSeq, 2, "the sequence number is saved before the lines leave")
    })

    it("a renumbered sequence records every owed line on the wire again with its new number", function () {
        const { d, store } = recorded({})
        d.open()
        d.feed("\n")
        d.take()
        d.link.sender.nextSeq = SEQ_LIMIT - 1
        d.link.write("a", true, false)
        d.link.write("b", true, false)
        d.link.write("c", false, false)
        d.link.write("d", true, false)
        d.pump()
        const a = SEQ_LIMIT - 1
        const b = SEQ_LIMIT - SEQ_SHIFT
        assert.deepEqual(store.log, ["owed 0:-1", "owed 1:-1", "owed 2:-1", `owed 0:${a}`, `owed 0:${a - SEQ_SHIFT}`, `owed 1:${b}`, `owed 2:${b + 2}`])
    })

    it("lines ACKed before they are read are kept, and unkept when read; one read with its ACK owed is recorded as taken; a peer's restart clears the taken ids", function () {
        const { d, store } = recorded({ ackDelay: 0 })
        d.open()
        d.feed("\n")
        d.reads = false
        d.feed("05five\n06six\n")
        assert.deepEqual(store.log, ["kept 0:5:five", "kept 1:6:six"])
        assert.equal(d.link.read(d.now), "five")
        assert.deepEqual(store.log.slice(2), ["unkept 0"])

        const late = recorded({ ackDelay: 400 })
        late.d.open()
        late.d.feed("\n")
        late.d.reads = false
        late.d.feed("07seven\n")
        assert.deepEqual(late.store.log, [])
        assert.equal(late.d.link.read(late.d.now), "seven")
        const seen = (r: LinkRecord) => r.seen[0]! | (r.seen[1]! << 8)
        assert.equal(seen(late.store.links[late.store.links.length - 1]!), 1 << 7, "7 recorded as taken")
        late.d.feed("00zero\n") // a v1 peer's restart
        assert.equal(seen(late.store.links[late.store.links.length - 1]!), 0, "the taken ids forgotten")
    })
})
