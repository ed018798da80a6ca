// What a plain MQTT subscriber got, line by line, telling two kinds of
// second copy apart: a broker's resend of a delivery it had already
// completed (the same packet id, DUP set: Mosquitto 2.0 does this to a
// QoS 2 subscriber after a restart, with or without the gateway) and a
// second publication (a new delivery: what a gateway resend would cause).
import type { IPublishPacket } from "mqtt"

export class Deliveries {
    private got = new Map<string, Array<{ mid: number; dup: boolean }>>()
    private waiters = new Map<string, Array<() => void>>()

    add(key: string, packet: IPublishPacket): void {
        const l = this.got.get(key) ?? []
        l.push({ mid: packet.messageId ?? 0, dup: packet.dup })
        this.got.set(key, l)
        for (const w of this.waiters.get(key) ?? []) w()
        this.waiters.delete(key)
    }

    has(key: string): boolean {
        return this.got.has(key)
    }

    wait(key: string): Promise<void> {
        if (this.got.has(key)) return Promise.resolve()
        return new Promise((r) => this.waiters.set(key, [...(this.waiters.get(key) ?? []), r]))
    }

    // lost: never delivered; published twice: a later copy that is a new
    // delivery; brokerResends: later copies with the first's packet id and DUP.
    check(keys: string[]): { lost: string[]; publishedTwice: string[]; brokerResends: number } {
        const lost: string[] = []
        const publishedTwice: string[] = []
        let brokerResends = 0
        for (const k of keys) {
            const l = this.got.get(k)
            if (!l) {
                lost.push(k)
                continue
            }
            for (let i = 1; i < l.length; i++) {
                if (l[i]!.dup && l[i]!.mid === l[0]!.mid) brokerResends++
                else publishedTwice.push(k)
            }
        }
        return { lost, publishedTwice, brokerResends }
    }
}
