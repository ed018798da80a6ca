// The four demos of micropython-iot, as the README shows them: `devs-iot server
// --app X` and the firmware of each demo in the simulator (`npm run sim`).
// Checks the lines both sides print.
import { buildSimImage, runSim, type SimConfig, type SimImage, type SimRun } from "../../src/server/cli/sim.js"
import { cli, freePort, type Cli } from "../kit/util.js"

describe("the demos, server (CLI) and board (simulator)", function () {
    this.timeout(120000)
    let port = 0
    const images = new Map<string, SimImage>()
    let running: Array<SimRun | Cli> = []

    before(async function () {
        this.timeout(300000)
        port = await freePort()
        const build = async (key: string, c: Omit<SimConfig, "host" | "port">) =>
            images.set(key, await buildSimImage({ host: "127.0.0.1", port, interval: 300, ...c }))
        await build("demo", { app: "demo", id: "1" })
        await build("button", { app: "remote", id: "a", role: "button" })
        await build("led", { app: "remote", id: "b", role: "led" })
        await build("qos", { app: "qos", id: "q1" })
        await build("qos-fast", { app: "qos-fast", id: "f1" })
    })

    after(() => {
        for (const i of images.values()) i.remove()
    })

    afterEach(async () => {
        for (const r of running.splice(0)) {
            if ("waitFor" in r && "output" in r) await (r as SimRun).stop()
            else (r as Cli).stop()
        }
    })

    async function serverApp(app: string): Promise<Cli> {
        const s = cli(["server", "--app", app, "--port", String(port), "--host", "127.0.0.1", "--interval", "300"])
        running.push(s)
        await s.waitFor(/ready/, 10000)
        return s
    }

    async function board(key: string): Promise<SimRun> {
        const r = await runSim(images.get(key)!.image)
        running.push(r)
        return r
    }

    it("demo: the board and the server exchange JSON lists", async function () {
        const s = await serverApp("demo")
        const b = await board("demo")
        await b.waitFor(/demo: sent \[1,0,\d+\]/, 30000)
        await b.waitFor(/demo: got \[0,\d+\] from the server/, 10000)
        await s.waitFor(/demo: got \[1,0,\d+\] from 1/, 10000)
    })

    it("remote: a button on board a switches the LED on board b, through the server", async function () {
        const s = await serverApp("remote")
        const led = await board("led")
        const button = await board("button")
        await button.waitFor(/remote: button pressed/, 30000)
        await led.waitFor(/remote: LED on \(button of a\)/, 10000)
        await led.waitFor(/remote: LED off \(button of a\)/, 10000)
        await s.waitFor(/remote: \{"button":1\} from a/, 1000)
    })

    it("qos: both ends report every line exactly once, in order", async function () {
        const s = await serverApp("qos")
        const b = await board("qos")
        await b.waitFor(/qos: received 40, duplicates 0, missing 0/, 30000)
        await s.waitFor(/qos: from q1: received 40, duplicates 0, missing 0/, 30000)
    })

    it("qos-fast: 20 writes in flight at once; every line exactly once", async function () {
        const s = await serverApp("qos-fast")
        const b = await board("qos-fast")
        await b.waitFor(/qos-fast: received 100, duplicates 0, missing 0/, 30000)
        await s.waitFor(/qos-fast: from f1: received 100, duplicates 0, missing 0/, 30000)
    })
})
