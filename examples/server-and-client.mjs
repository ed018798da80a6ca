// The library's two halves on one machine: a Server, and a Node Client that
// talks to it the way a board would. Run: node examples/server-and-client.mjs
import { Client, Server } from "devs-iot"

const server = new Server({ port: 0, host: "127.0.0.1", expected: ["sensor-1"] }) // port 0: any free port
await server.listen()
console.log(`server listening on port ${server.port}`)

// The server's application: answer every reading of sensor-1.
const serving = (async () => {
    const conn = await server.clientConn("sensor-1") // resolves once sensor-1 has connected
    for await (const line of conn) {
        const reading = JSON.parse(line)
        await conn.write(JSON.stringify({ ok: true, t: reading.t })) // qos + wait: resolves once the client has read it
    }
})()

const client = new Client({ id: "sensor-1", host: "127.0.0.1", port: server.port })
client.start() // connects, and reconnects after any outage
await client.connected()
await client.write(JSON.stringify({ t: 21.5 })) // qos + wait: exactly once, in order
console.log(`reply: ${await client.readline()}`)

await client.close()
await server.close() // ends the server's `for await` loop
await serving
