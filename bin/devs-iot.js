#!/usr/bin/env node
// The devs-iot command (see src/server/cli/main.ts). Built by `npm run build`.
import { main } from "../dist/src/server/cli/main.js"

main(process.argv.slice(2), process.env).then(
    (code) => process.exit(code),
    (e) => {
        process.stderr.write(`devs-iot: ${e && e.stack ? e.stack : e}\n`)
        process.exit(1)
    }
)
