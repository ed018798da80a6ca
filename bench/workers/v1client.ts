// A peer that behaves like the ORIGINAL micropython-iot client (the test
// kit's V1Client: ACK on receipt, 20-line receive queue, resend after
// timeout), in its own process: the v1 end of the v1 benchmark.
import { V1Client } from "../../test/kit/v1peer.js"
import { Counter, sendTimed, type SendMode } from "./ops.js"
import { serveRequests } from "../lib/rpc.js"

let client: V1Client | undefined
let counter: Counter | undefined

function the(): V1Client {
    if (!client) throw new Error("not connected")
    return client
}

serveRequests(
    {
        ping: () => "pong",
        async connect(a: { id: string; port: number; timeout?: number }) {
            client = new V1Client({ id: a.id, port: a.port, timeout: a.timeout ?? 2000 }).start()
            counter = new Counter(client, a.id)
            await client.connected()
            return null
        },
        sendTimed: (a: { n: number; mode: SendMode; cold?: number }) => sendTimed(the(), a.n, a.mode, a.cold),
        arm(a: { n: number }) {
            counter!.arm(a.n)
            return null
        },
        finished: () => counter!.finished(),
        // What went wrong on the wire: resends, queue overflows, duplicates, outages.
        stats: () => ({ resends: the().resends, overflows: the().overflows, duplicates: the().duplicates, drops: the().drops }),
        async close() {
            await client?.close()
            return null
        },
    },
    Number(process.argv[2])
)

process.on("SIGTERM", () => {
    void (client?.close() ?? Promise.resolve()).finally(() => process.exit(0))
})
