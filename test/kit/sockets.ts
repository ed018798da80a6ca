// Helpers shared by the loopback tests of the server: a raw socket that
// speaks bytes by hand (as a v1 board would), and the server's warnings.
import { once } from "node:events"
import { connect, type Socket } from "node:net"
import type { Server, Warning } from "../../src/server/index.js"
import { onCleanup, within } from "./util.js"

export type RawSocket = Socket & { text: string }

// Connects, writes `first`, and keeps everything received in `text`.
export async function raw(port: number, first: string): Promise<RawSocket> {
    const s = connect({ port, host: "127.0.0.1" }) as RawSocket
    s.text = ""
    s.on("data", (b) => (s.text += b.toString()))
    s.on("error", () => {})
    onCleanup(() => void s.destroy())
    await once(s, "connect")
    s.write(first)
    return s
}

// Every warning the server emits from now on.
export function warnings(server: Server): Warning[] {
    const list: Warning[] = []
    server.on("warning", (w) => list.push(w))
    return list
}

// The next warning with this code, within `ms`.
export function nextWarning(server: Server, code: Warning["code"], ms = 5000): Promise<Warning> {
    return within(
        new Promise((resolve) => {
            const on = (w: Warning) => {
                if (w.code !== code) return
                server.off("warning", on)
                resolve(w)
            }
            server.on("warning", on)
        }),
        ms,
        `a ${code} warning`
    )
}
