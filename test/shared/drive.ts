// Drives one Link with a virtual clock and raw bytes, as a v1 peer would send
// them: the way to test one rule at a time.

import { boardDefaults, ClientLink, Link, ServerLink, LinkConfig, LinkEvent, LinkOptions, nodeDefaults, resolveConfig } from "../../src/shared/index.js"

// `L`: the end under test (ClientLink, ServerLink).
export class Drive<L extends Link = Link> {
    now = 0
    sent: string[] = [] // each pollTransmit, as text
    events: LinkEvent[] = []
    rx: string[] = []
    reads = true

    constructor(readonly link: L) {}

    open(): Drive<L> {
        this.link.open(this.now)
        this.pump()
        return this
    }

    feed(s: string): void {
        this.link.receive(Buffer.from(s), this.now)
        this.pump()
    }

    // Moves the clock to now+ms, handling every deadline on the way.
    advance(ms: number): void {
        const end = this.now + ms
        for (let i = 0; i < 100000; i++) {
            const t = this.link.pollTimeout()
            if (t < 0 || t > end) break
            if (t > this.now) this.now = t
            this.link.handleTimeout(this.now)
            this.pump()
        }
        this.now = end
        this.pump()
    }

    pump(): void {
        while (this.link.step(this.now)) {}
        while (this.reads) {
            const s = this.link.read(this.now)
            if (s === undefined) break
            this.rx.push(s)
        }
        if (this.reads) this.link.release()
        while (true) {
            const b = this.link.pollTransmit(this.now)
            if (b === undefined) break
            this.sent.push(b.toString("utf-8"))
        }
        while (true) {
            const e = this.link.pollEvent()
            if (e === undefined) break
            this.events.push(e)
        }
    }

    // Everything sent since the last call, joined.
    take(): string {
        const s = this.sent.join("")
        this.sent = []
        return s
    }

    count(type: string): number {
        let n = 0
        for (let i = 0; i < this.events.length; i++) if (this.events[i].type === type) n++
        return n
    }

    notices(code: string): number {
        let n = 0
        for (let i = 0; i < this.events.length; i++) {
            const e = this.events[i]
            if (e.type === "notice" && e.code === code) n++
        }
        return n
    }
}

export function nodeCfg(o: LinkOptions): LinkConfig {
    return resolveConfig(o, nodeDefaults())
}

export function boardCfg(o: LinkOptions): LinkConfig {
    return resolveConfig(o, boardDefaults())
}

export function serverDrive(o: LinkOptions): Drive<ServerLink> {
    return new Drive(new ServerLink(nodeCfg(o), "srv")).open()
}

export function clientDrive(o: LinkOptions): Drive<ClientLink> {
    return new Drive(new ClientLink(nodeCfg(o), "cli", "board-1")).open()
}

export function blanks(n: number): string {
    let s = ""
    for (let i = 0; i < n; i++) s += "\n"
    return s
}
