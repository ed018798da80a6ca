// A keyed, encrypted link: the client and the server prove the same key to
// each other, every line carries a MAC and a sequence number, and payloads
// are encrypted. A client with the wrong key is refused.
// Run: node examples/keys.mjs
import { randomBytes } from "node:crypto"
import { Client, Server } from "devs-iot"

const key = randomBytes(32).toString("hex") // what `devs-iot keygen` prints
const server = new Server({ port: 0, host: "127.0.0.1", keys: { kitchen: key }, encrypt: true })
server.on("warning", (w) => console.log(`server warning: ${w.code} ${w.id}: ${w.detail}`))
await server.listen()

const client = new Client({ id: "kitchen", port: server.port, key, encrypt: true }).start()
await client.connected()
await client.write("secret reading 42")
const conn = await server.clientConn("kitchen")
console.log(`server read: ${await conn.readline()}`)

// The same id with another key never gets a link: the server refuses it.
const refused = new Promise((resolve) => server.once("warning", resolve))
const stranger = new Client({ id: "kitchen", port: server.port, key: randomBytes(32) }).start()
await refused
await stranger.close()

await client.close()
await server.close()
