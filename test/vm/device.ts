// Cases for the board shell (src/device) that need the DeviceScript VM but no
// server: settings as the board reads them, bounded waits that must not leak
// fibers, and the socket layer's handling of late connect results (driven by
// stand-in runtime primitives). Prints VMCASE lines like test/vm/main.ts for
// test/node/device-vm.test.ts, then exits 0 through ds.restart().
import * as ds from "@devicescript/core"
import { checkKeys, ConfigError, parseSettings } from "../../src/device/config.js"
import { Bounded, WifiNetwork } from "../../src/device/network.js"
import { ConnectError, Primitives, SocketEvent, TcpSocket, usePrimitives } from "../../src/device/socket.js"
import { WATCHDOG } from "../../src/shared/watchdog.js"
import { eq, ok } from "../shared/harness.js"

interface DeviceCase {
    name: string
    fn: () => Promise<void>
}
const cases: DeviceCase[] = []
function test(name: string, fn: () => Promise<void>): void {
    cases.push({ name: name, fn: fn })
}

function message(e: unknown): string {
    const m = (e as { message?: unknown }).message
    return typeof m === "string" ? m : "non-Error thrown"
}

function refused(raw: { [name: string]: unknown }): string {
    try {
        parseSettings(raw, "devid")
    } catch (e) {
        ok(e instanceof ConfigError, "a ConfigError")
        return message(e)
    }
    return ""
}

test("settings: a key in an image built without authentication is refused at start, naming IOT_KEY", async function () {
    const key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
    const c = parseSettings({ IOT_HOST: "h", IOT_KEY: key }, "devid").config
    let got = ""
    try {
        checkKeys(c, false)
    } catch (e) {
        ok(e instanceof ConfigError, "a ConfigError")
        got = message(e)
    }
    ok(got.indexOf("setting IOT_KEY: this firmware image is built without authentication") === 0, "named: " + got)
    checkKeys(c, true)
    checkKeys(parseSettings({ IOT_HOST: "h" }, "devid").config, false)
})

test("settings: numeric-looking values arrive as numbers and are accepted; defaults apply to absent ones", async function () {
    const s = parseSettings({ IOT_HOST: "192.168.1.10", IOT_ID: 1, IOT_PORT: 8123, IOT_VERBOSE: 1 }, "devid")
    eq(s.config.id, "1", "IOT_ID=1")
    eq(s.config.port, 8123, "port")
    eq(s.config.watchdog, WATCHDOG.dflt, "watchdog on by default")
    eq(s.config.verbose, true, "verbose")
    eq(s.config.timeout, 2000, "timeout default")
    eq(s.role, "", "role")
    eq(parseSettings({ IOT_HOST: "h", IOT_VERBOSE: true, IOT_ENCRYPT: false }, "devid").config.id, "devid", "id defaults to the device id")
    eq(parseSettings({ IOT_HOST: "h", IOT_PORT: "9000" }, "d").config.port, 9000, "a port given as text")
})

test("settings: a setting present but unusable is refused, naming it", async function () {
    eq(refused({ IOT_HOST: "h", IOT_PORT: "abc" }), 'setting IOT_PORT must be a whole number from 1 to 65535, got "abc"', "port")
    eq(refused({ IOT_HOST: "h", IOT_WATCHDOG: 1.5 }), "setting IOT_WATCHDOG must be a whole number from 0 to 3600000, got the number 1.5", "watchdog")
    eq(refused({ IOT_HOST: "h", IOT_VERBOSE: "yes" }), "setting IOT_VERBOSE must be 0 or 1, got string", "verbose")
    eq(refused({ IOT_HOST: 10 }), 'setting IOT_HOST must be text, got the number 10 (write it as a JSON string: IOT_HOST="...")', "host as a number")
    eq(refused({ IOT_HOST: true }), 'setting IOT_HOST must be text, got true (write it as a JSON string: IOT_HOST="...")', "host as true")
    eq(refused({ IOT_HOST: "h", IOT_ID: false }), 'setting IOT_ID must be text or a whole number, got false (write it as a JSON string: IOT_ID="...")', "id as false")
    eq(refused({ IOT_HOST: "192.168.1.10 " }), "setting IOT_HOST has a space at its start or end (the .env parser keeps it): remove it", "trailing space")
    eq(refused({ IOT_HOST: "h", IOT_ID: 1.5 }), 'setting IOT_ID must be text or a whole number, got the number 1.5 (write it as a JSON string: IOT_ID="...")', "id")
    eq(refused({ IOT_HOST: "h", IOT_ROLE: "buton" }), 'setting IOT_ROLE must be "button", "led" or absent, got "buton"', "role")
    eq(refused({ IOT_HOST: "h", IOT_KEY: "abc" }), "setting IOT_KEY must be 64 lowercase hex digits (32 bytes), e.g. from devs-iot keygen", "key")
    eq(refused({}), "setting IOT_HOST is missing: set it to the server's address in .env.local", "no host")
})

// A stand-in for a Jacdac read that never answers (the board waiting for WiFi).
let started = 0
const never = ds.emitter<number>()
async function hang(): Promise<void> {
    started++
    await ds.wait(never)
}

test("bounded wait: 500 timeouts of a hanging operation leave one fiber, and the heap holds 30 KB more", async function () {
    const b = new Bounded()
    started = 0
    for (let i = 0; i < 500; i++) {
        const done = await b.run(hang, 1)
        if (done) ok(false, "a hanging run reported done")
    }
    // One fiber: a run that had finished would have let the next start another.
    eq(started, 1, "fibers started for the hanging work")
    const keep: Buffer[] = []
    for (let i = 0; i < 30; i++) keep.push(Buffer.alloc(1024))
    eq(keep.length, 30, "30 KB allocated")
})

test("bounded wait: WifiNetwork.waitUp in the simulator (its WiFi reads never answer): 300 timeouts, heap flat", async function () {
    const net = new WifiNetwork()
    for (let i = 0; i < 300; i++) {
        const up = await net.waitUp(5)
        if (up) ok(false, "no WiFi in the simulator")
    }
    const keep: Buffer[] = []
    for (let i = 0; i < 30; i++) keep.push(Buffer.alloc(1024))
    eq(keep.length, 30, "30 KB allocated after 300 timeouts")
})

// Stand-in runtime socket primitives: records opens/closes; the test fires events.
interface FakeRuntime {
    opens: number
    closes: number
    prims: Primitives
}
function fakeRuntime(): FakeRuntime {
    const f: FakeRuntime = { opens: 0, closes: 0, prims: undefined as any as Primitives }
    f.prims = {
        _socketOpen: function (host: string, port: number): number {
            f.opens++
            return 0
        },
        _socketClose: function (): number {
            f.closes++
            return 0
        },
        _socketWrite: function (b: Buffer): number {
            return 0
        },
        _socketOnEvent: function (e: SocketEvent, arg?: Buffer | string): void {},
    }
    return f
}
function fire(f: FakeRuntime, e: SocketEvent, arg?: Buffer | string): void {
    const h = f.prims._socketOnEvent
    h(e, arg)
}

test("socket: a late result of an abandoned connect never acts on the next socket", async function () {
    const f = fakeRuntime()
    usePrimitives(f.prims)
    let kind = ""
    try {
        await TcpSocket.connect("h", 1, 50, 1024, function () {})
    } catch (e) {
        kind = e instanceof ConnectError ? e.kind : "other"
    }
    eq(kind, "noAnswer", "the first connect timed out")
    eq(f.opens, 1, "one open")
    // The next connect, while the runtime still owes the first one's result.
    let second: TcpSocket | undefined = undefined
    let secondError = ""
    setTimeout(async function () {
        try {
            second = await TcpSocket.connect("h", 1, 2000, 1024, function () {})
        } catch (e) {
            secondError = message(e)
        }
    }, 0)
    await ds.sleep(100)
    eq(f.opens, 1, "no second open while the first is owed (opens do not queue up)")
    fire(f, "open") // the abandoned connect succeeded, late
    fire(f, "data", Buffer.from("00hello\n")) // and its server spoke
    await ds.sleep(100)
    eq(second === undefined, true, "the late open did not open the second socket")
    eq(secondError, "", "nor fail it")
    eq(f.closes, 1, "the late socket was closed")
    eq(f.opens, 2, "then the second open was issued")
    fire(f, "open") // the second connect's own result
    await ds.sleep(50)
    ok(second !== undefined, "the second socket opened on its own result")
    const s = second as any as TcpSocket
    eq(s.state, "open", "open")
    const got: string[] = []
    s.attach(function (b: Buffer) {
        got.push(b.toString())
    })
    eq(got.length, 0, "no bytes of the earlier socket")
    s.close()
    usePrimitives(ds as any as Primitives)
})

test("socket: an error result of an abandoned connect does not fail the next one", async function () {
    const f = fakeRuntime()
    usePrimitives(f.prims)
    try {
        await TcpSocket.connect("h", 1, 30, 1024, function () {})
    } catch (e) {}
    let second: TcpSocket | undefined = undefined
    let secondError = ""
    setTimeout(async function () {
        try {
            second = await TcpSocket.connect("h", 1, 2000, 1024, function () {})
        } catch (e) {
            secondError = message(e)
        }
    }, 0)
    await ds.sleep(50)
    fire(f, "error", "can't connect") // late: the first connect failed
    await ds.sleep(50)
    eq(secondError, "", "the second connect is still waiting for its own result")
    eq(f.opens, 2, "second open issued")
    fire(f, "open")
    await ds.sleep(50)
    ok(second !== undefined, "opened")
    ;(second as any as TcpSocket).close()
    usePrimitives(ds as any as Primitives)
})

async function runAll(): Promise<void> {
    let passed = 0
    let failed = 0
    for (let i = 0; i < cases.length; i++) {
        const c = cases[i]
        const t0 = ds.millis()
        try {
            await c.fn()
            passed++
            console.log("VMCASE pass device :: " + c.name + " :: " + (ds.millis() - t0) + " ms")
        } catch (e) {
            failed++
            console.log("VMCASE fail device :: " + c.name + " :: " + message(e))
        }
        await ds.sleep(0)
    }
    console.log("VMDONE " + passed + " passed, " + failed + " failed")
    if (failed === 0) ds.restart()
    else throw new Error(failed + " device cases failed in the VM")
}

await runAll()
