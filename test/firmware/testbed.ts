// Firmware for the tests: it echoes every line back (qos) and obeys JSON
// commands from the test server, so one image serves many scenarios.
//   {"cmd":"send","n":N,"prefix":"p","qos":true,"wait":true}  write p0..pN-1, then {"sent":N}
//   {"cmd":"stats"}     reply with the link's counters
//   {"cmd":"pause","ms":M}   stop reading for M ms (a slow application)
//   {"cmd":"hang"}      the network's next wait for WiFi never returns, as a
//                       stuck runtime call would (after the link drops, the
//                       watchdog should fire)
//   {"cmd":"lost"}      the network reports its IP address lost (lostIp), as
//                       the runtime does when WiFi drops
//   {"cmd":"restart"}   restart the program
import * as ds from "@devicescript/core"
import { AppConfig } from "../../src/device/config.js"
import { makeClient, setBoardNetwork, spawnWrite, Pending } from "../../src/device/start.js"
import { Network } from "../../src/device/network.js"

// The simulator's network (always up), whose waits can be made to hang.
class StuckableNetwork implements Network {
    readonly name = "simulator"
    stuck = false
    async waitUp(ms: number): Promise<boolean> {
        while (this.stuck) await ds.sleep(60000)
        return true
    }
    lost: () => void = function () {}
    async rejoin(ms: number): Promise<void> {}
    onLost(lost: () => void): void {
        this.lost = lost
    }
    rssi(): number | undefined {
        return undefined
    }
}

export async function testbed(c: AppConfig): Promise<void> {
    const net = new StuckableNetwork()
    setBoardNetwork(net) // in place of the simulator's
    const client = makeClient(c, function (up: boolean) {
        console.log("testbed: status " + (up ? "up" : "down") + " connects " + client.connects)
    })
    client.start()
    console.log("testbed: started " + c.id)
    while (true) {
        const line = await client.readline()
        let cmd = ""
        let o: any = undefined
        if (line.charCodeAt(0) === 123) {
            try {
                o = JSON.parse(line)
                if (typeof o.cmd === "string") cmd = o.cmd
            } catch (e) {
                cmd = ""
            }
        }
        if (cmd === "") {
            await client.write(line)
        } else if (cmd === "send") {
            const n: number = o.n
            const qos = o.qos !== false
            const wait = o.wait !== false
            const prefix: string = typeof o.prefix === "string" ? o.prefix : "m"
            const pending: Pending = { n: 0, failed: 0 }
            for (let i = 0; i < n; i++) {
                if (qos && wait) await client.write(prefix + i)
                else if (!qos) await client.write(prefix + i, { qos: false })
                else {
                    spawnWrite(client, prefix + i, false, pending)
                    while (pending.n >= 16) await ds.sleep(5)
                }
            }
            while (pending.n > 0) await ds.sleep(5)
            await client.write('{"sent":' + n + ',"failed":' + pending.failed + "}")
        } else if (cmd === "stats") {
            const s = client.stats
            await client.write(
                '{"connects":' + client.connects + ',"received":' + s.received + ',"duplicates":' + s.duplicates + ',"dropped":' + s.dropped +
                    ',"badLines":' + s.badLines + ',"tooLong":' + s.tooLong + ',"resent":' + s.resent + ',"beats":' + client.beats() + "}"
            )
        } else if (cmd === "pause") {
            console.log("testbed: pausing reads for " + o.ms + " ms")
            await ds.sleep(o.ms)
        } else if (cmd === "hang") {
            console.log("testbed: the next wait for WiFi hangs")
            net.stuck = true
        } else if (cmd === "lost") {
            net.lost()
        } else if (cmd === "restart") {
            ds.restart()
        }
    }
}
