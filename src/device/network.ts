// The board's network, behind one interface so the simulator (where the WiFi
// role never binds and its reads hang) can stand in. Every await here has a
// deadline.
import * as ds from "@devicescript/core"

export interface Network {
    readonly name: string
    // Waits up to `ms` for an IP address; true when the network is up.
    waitUp(ms: number): Promise<boolean>
    // Drops and rejoins the network, within about `ms`.
    rejoin(ms: number): Promise<void>
    // `lost` runs when the network reports losing its IP address.
    onLost(lost: () => void): void
    // The signal's strength (dBm) as last reported, or undefined.
    rssi(): number | undefined
}

// The simulator's network: sockets ignore WiFi there, so it is always up.
export class SimNetwork implements Network {
    readonly name = "simulator"
    async waitUp(ms: number): Promise<boolean> {
        return true
    }
    async rejoin(ms: number): Promise<void> {}
    onLost(lost: () => void): void {}
    rssi(): number | undefined {
        return undefined
    }
}

// One operation that can hang (a Jacdac register read or command, which on a
// board waiting for WiFi may never answer), bounded in time. The work runs in
// its own fiber; at most one such fiber exists per Bounded: a call while an
// earlier run still hangs starts no new fiber and waits on that one, so hung
// fibers never pile up on the heap however often the caller times out.
export class Bounded {
    private running = false
    private finished = 0 // runs completed so far

    // True when a run (this one, or the earlier one it joined) finished within `ms`.
    async run(work: () => Promise<void>, ms: number): Promise<boolean> {
        const end = ds.millis() + ms
        const before = this.finished
        if (!this.running) {
            this.running = true
            const self = this
            setTimeout(async function () {
                try {
                    await work()
                } catch (e) {
                    // a failed step is a step that finished: the caller checks its result
                }
                self.running = false
                self.finished++
            }, 0)
        }
        while (this.finished === before && ds.millis() < end) await ds.sleep(ms < 50 ? 10 : 50)
        return this.finished !== before
    }
}

// The board's WiFi service. The runtime keeps one network (WIFI_SSID /
// WIFI_PWD, sent at deploy), scans every 10 s while disconnected and
// reconnects by itself; this adds the rejoin the link asks for.
export class WifiNetwork implements Network {
    readonly name = "wifi"
    private wifi: ds.Wifi
    private up = false
    private lost: (() => void) | undefined = undefined
    private readIp = new Bounded()
    private disable = new Bounded()
    private enable = new Bounded()
    private signal: number | undefined = undefined

    constructor() {
        this.wifi = new ds.Wifi()
        const self = this
        // The service streams its reading (RSSI); nothing is awaited here.
        // NaN fails the range test.
        this.wifi.reading.subscribe(function (v: number) {
            if (typeof v === "number" && v <= 0 && v >= -150) self.signal = Math.floor(v + 0.5)
        })
        this.wifi.gotIp.subscribe(function () {
            self.up = true
        })
        this.wifi.lostIp.subscribe(function () {
            self.up = false
            if (self.lost) self.lost()
        })
    }

    onLost(lost: () => void): void {
        this.lost = lost
    }

    rssi(): number | undefined {
        return this.signal
    }

    async waitUp(ms: number): Promise<boolean> {
        const end = ds.millis() + ms
        if (!this.up) {
            const self = this
            await this.readIp.run(async function () {
                const ip = await self.wifi.ipAddress.read()
                if (ip && ip.length === 4 && (ip[0] | ip[1] | ip[2] | ip[3]) !== 0) self.up = true
            }, ms)
        }
        while (!this.up && ds.millis() < end) await ds.sleep(100)
        return this.up
    }

    async rejoin(ms: number): Promise<void> {
        const self = this
        this.up = false
        await this.disable.run(async function () {
            await self.wifi.enabled.write(false)
        }, ms / 4)
        await ds.sleep(500)
        await this.enable.run(async function () {
            await self.wifi.enabled.write(true)
        }, ms / 4)
        await this.waitUp(ms / 2)
    }
}
