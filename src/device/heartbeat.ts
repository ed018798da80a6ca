// The board's LED. Each light has one owner: the client's heartbeat
// (client.ts), unless an app takes the LED for itself (the remote demo's
// LED), in which case the client runs without a heartbeat.
import * as ds from "@devicescript/core"
import "@devicescript/gpio"
import { setStatusLight } from "@devicescript/runtime"

// A GPIO pin when the board exposes one (see boards/), else the status light.
// Nothing fails where neither exists (the simulator has no GPIO): the light
// is then off for good, with one log line.
export class Light {
    private pin: ds.OutputPin | undefined = undefined
    private busy = false
    private broken = false
    private want = -1 // status light: the colour still to show, -1 none

    constructor(pin: ds.OutputPin | undefined) {
        if (pin === undefined) return
        try {
            pin.setMode(ds.GPIOMode.Output)
            this.pin = pin
        } catch (e) {
            console.log("led: pin not available; using the status light")
        }
    }

    // `color` 0 is off; a pin is on for any other colour.
    set(color: number): void {
        if (this.broken) return
        if (this.pin) {
            try {
                this.pin.write(color !== 0)
            } catch (e) {
                this.broken = true
            }
            return
        }
        // The status light is a Jacdac command: one at a time, the latest wins.
        this.want = color
        if (this.busy) return
        this.busy = true
        const self = this
        setTimeout(async function () {
            while (self.want >= 0 && !self.broken) {
                const c = self.want
                self.want = -1
                try {
                    await setStatusLight(c)
                } catch (e) {
                    self.broken = true
                    console.log("led: no status light")
                }
            }
            self.busy = false
        }, 0)
    }
}
