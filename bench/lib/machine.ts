// What the run ran on: docs/benchmarks.md's tables are only meaningful with it.
import { cpus, loadavg, totalmem } from "node:os"
import { readFileSync } from "node:fs"

export interface Machine {
    nproc: number
    cpu: string
    memGB: number
    node: string
    os: string
    loadBefore: number[] // 1, 5, 15 min load averages when the run started
    fdLimit: string
    ephemeralPorts: string
}

function read(path: string): string {
    try {
        return readFileSync(path, "utf8").trim()
    } catch {
        return "unknown"
    }
}

export function machine(): Machine {
    const model = /model name\s*:\s*(.*)/.exec(read("/proc/cpuinfo"))
    const limits = /Max open files\s+(\S+)\s+(\S+)/.exec(read("/proc/self/limits"))
    return {
        nproc: cpus().length,
        cpu: model ? model[1]! : cpus()[0]?.model ?? "unknown",
        memGB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        os: `${process.platform} ${read("/proc/sys/kernel/osrelease")}`,
        loadBefore: loadavg().map((x) => Math.round(x * 100) / 100),
        fdLimit: limits ? `${limits[1]} soft, ${limits[2]} hard` : "unknown",
        ephemeralPorts: read("/proc/sys/net/ipv4/ip_local_port_range").replace(/\s+/, "-"),
    }
}

// The kernel's count of connections dropped because a listen queue was full
// (this network namespace, every process: other work on the machine counts too).
export function listenOverflows(): number {
    const lines = read("/proc/net/netstat").split("\n")
    for (let i = 0; i + 1 < lines.length; i += 2) {
        const names = lines[i]!.split(/\s+/)
        const values = lines[i + 1]!.split(/\s+/)
        const k = names.indexOf("ListenOverflows")
        if (k > 0) return Number(values[k])
    }
    return NaN
}
