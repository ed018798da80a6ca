// The simulator's Jacdac side for OTA: `devs run --tcp` connects its
// Jacdac transport to this host (tools/jacdac-port.cjs redirects it), which
// reads the VM's announce and sends CloudConfiguration's
// set_connection_string, as a Jacdac host on a board's USB would. The VM runs
// in a folder of its own: its flash (./.devicescript/flash/sim.bin, where the
// connection string is kept) persists there across the VM's restarts.
import { spawn } from "node:child_process"
import { createRequire } from "node:module"
import { createServer, type Server as NetServer, type Socket } from "node:net"
import { join } from "node:path"
import { REPO, vmLine, vmRun, VmOutput, VM_OUTPUT_KEEP, type VmRun } from "../cli/sim.js"
import { LineSplitter } from "./boardlog.js"

const SRV_CLOUD_CONFIGURATION = 0x1462eefc
const CMD_SET_CONNECTION_STRING = 0x86

function crc16(p: Buffer): number {
    let c = 0xffff
    for (const d of p) {
        let x = (c >> 8) ^ d
        x ^= x >> 4
        c = ((c << 8) ^ (x << 12) ^ (x << 5) ^ x) & 0xffff
    }
    return c
}

// One Jacdac frame with one command packet to `device`.
function commandFrame(device: Buffer, serviceIndex: number, cmd: number, data: Buffer): Buffer {
    const pkt = Buffer.alloc((4 + data.length + 3) & ~3)
    pkt[0] = data.length
    pkt[1] = serviceIndex
    pkt.writeUInt16LE(cmd, 2)
    data.copy(pkt, 4)
    const f = Buffer.alloc(12 + pkt.length)
    f[2] = pkt.length
    f[3] = 1 // command: the device id is the destination
    device.copy(f, 4)
    pkt.copy(f, 12)
    f.writeUInt16LE(crc16(f.subarray(2)), 0)
    return f
}

export class JacdacHost {
    device: Buffer | undefined
    cloudConfigIndex = -1
    private server: NetServer
    private socket: Socket | undefined
    private announced: Array<() => void> = []

    constructor() {
        this.server = createServer((s) => {
            this.socket = s
            let acc: Buffer = Buffer.alloc(0)
            s.on("error", () => {})
            s.on("data", (d: Buffer) => {
                acc = Buffer.concat([acc, d])
                for (;;) {
                    if (!acc.length) break
                    const long = acc[0] === 255
                    if (long && acc.length < 3) break
                    const n = long ? acc[1]! | (acc[2]! << 8) : acc[0]!
                    const off = long ? 3 : 1
                    if (acc.length < off + n) break
                    this.frame(acc.subarray(off, off + n))
                    acc = acc.subarray(off + n)
                }
            })
        })
    }

    async listen(): Promise<number> {
        await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", () => r()))
        return (this.server.address() as { port: number }).port
    }

    close(): Promise<void> {
        this.socket?.destroy()
        return new Promise((r) => this.server.close(() => r()))
    }

    // Waits for the VM's announce, then sends the connection string.
    async setConnectionString(s: string): Promise<void> {
        if (!this.device) await new Promise<void>((r) => this.announced.push(r))
        if (this.cloudConfigIndex < 0) throw new Error("the VM announces no CloudConfiguration service")
        const f = commandFrame(this.device!, this.cloudConfigIndex, CMD_SET_CONNECTION_STRING, Buffer.from(s))
        this.socket!.write(Buffer.concat([Buffer.from([f.length]), f]))
    }

    private frame(f: Buffer): void {
        if (f.length < 12 || f[3]! & 1 || this.device) return
        let p = 12
        while (p + 4 <= 12 + f[2]! && p + 4 <= f.length) {
            const size = f[p]!, index = f[p + 1]!, cmd = f.readUInt16LE(p + 2)
            if (index === 0 && cmd === 0) {
                const classes: number[] = []
                for (let i = p + 8; i + 4 <= p + 4 + size; i += 4) classes.push(f.readUInt32LE(i))
                this.device = Buffer.from(f.subarray(4, 12))
                this.cloudConfigIndex = classes.indexOf(SRV_CLOUD_CONFIGURATION) + 1 || -1
                for (const r of this.announced.splice(0)) r()
                return
            }
            p += (4 + size + 3) & ~3
        }
    }
}

export type BoardVm = VmRun<void>

// `devs run <image> --tcp` in `cwd`, its Jacdac transport on `jacdacPort`.
export function runBoardVm(image: string, jacdacPort: number, cwd: string, onLine?: (line: string) => void, keep = VM_OUTPUT_KEEP): BoardVm {
    const cliPath = createRequire(import.meta.url).resolve("@devicescript/cli/built/devicescript-cli.cjs")
    const child = spawn(process.execPath, ["--require", join(REPO, "tools/jacdac-port.cjs"), cliPath, "run", image, "--tcp"], {
        cwd,
        env: { ...process.env, NO_UPDATE_NOTIFIER: "1", DEVS_IOT_JACDAC_PORT: String(jacdacPort) },
        stdio: ["ignore", "pipe", "pipe"],
    })
    const exited = new Promise<void>((r) => child.on("exit", () => r()))
    const out = new VmOutput(keep)
    const vm: BoardVm = vmRun(child, out, exited)
    const splitter = new LineSplitter(keep)
    const take = (b: Buffer) => {
        const text = b.toString().replace(/\x1b\[[0-9;]*m/g, "")
        if (onLine) for (const l of splitter.push(b)) onLine(vmLine(l))
        out.add(text)
    }
    child.stdout!.on("data", take)
    child.stderr!.on("data", take)
    return vm
}
