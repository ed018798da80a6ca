// The heartbeat LED: toggled on every keepalive received, so a glance tells
// whether the link is alive. A GPIO pin when the board exposes one (see
// boards/), else the status light. Nothing fails where neither exists (the
// simulator has no GPIO): the LED is then off for good, with one log line.
import * as ds from "@devicescript/core"
import "@devicescript/gpio"
import { setStatusLight } from "@devicescript/runtime"

export class Heartbeat {
    private on = false
    private pin: ds.OutputPin | undefined = undefined
    private lightBusy = false
    private broken = false

    constructor(pin: ds.OutputPin | undefined) {
        if (pin === undefined) return
        try {
            pin.setMode(ds.GPIOMode.Output)
            this.pin = pin
        } catch (e) {
            console.log("heartbeat: LED pin not available; using the status light")
        }
    }

    toggle(): void {
        if (this.broken) return
        this.on = !this.on
        if (this.pin) {
            try {
                this.pin.write(this.on)
            } catch (e) {
                this.broken = true
            }
            return
        }
        if (this.lightBusy) return // one update at a time; the next keepalive catches up
        this.lightBusy = true
        const self = this
        const color = this.on ? 0x002000 : 0
        setTimeout(async function () {
            try {
                await setStatusLight(color)
            } catch (e) {
                self.broken = true
                console.log("heartbeat: no status light")
            }
            self.lightBusy = false
        }, 0)
    }
}
