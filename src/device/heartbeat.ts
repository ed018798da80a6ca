// The board's LED, and the heartbeat that owns it. Each light has one owner:
// the heartbeat, unless an app takes the LED for itself (the remote demo's
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

// Blinks while the link is healthy, whatever the traffic; off while it is
// down. The client calls beat() on a timer with the link's status (which
// itself goes down after `timeout` ms without anything from the server).
export class Heartbeat {
    private on = false
    beats = 0 // blinks so far (tests read it)

    constructor(private light: Light | undefined) {}

    beat(up: boolean): void {
        if (!this.light) return
        const next = up ? !this.on : false
        if (next === this.on) return
        this.on = next
        if (up) this.beats++
        this.light.set(next ? 0x002000 : 0)
    }
}
