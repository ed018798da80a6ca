// Firmware bytecode size, by part, from the build's size report
// (build/devs/sizes.json, written by tools/build-devs.mjs). A full run builds
// the images afresh; a quick one reuses the last build when there is one.
import { execFile } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Context, SectionResult } from "../lib/context.js"
import { kb } from "../lib/table.js"

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../../..")
const SIZES = join(REPO, "build/devs/sizes.json")
const IMAGES: Array<[string, string]> = [
    ["demo", "demo"],
    ["remote", "remote"],
    ["qos", "qos / qos-fast"],
    ["demo-keyed", "demo with authentication (src/main.ts)"],
]

interface Sizes {
    total: number
    client: number
    app: number
    libraries: number
    data: number
    keyed?: boolean // built with authentication (IOT_KEY set, or src/main*.ts)
}

export async function footprint(ctx: Context): Promise<SectionResult> {
    const rebuilt = !ctx.quick || !existsSync(SIZES)
    if (rebuilt) {
        ctx.log("footprint: building the firmware images (tools/build-devs.mjs)")
        await new Promise<void>((resolve, reject) =>
            execFile(process.execPath, [join(REPO, "tools/build-devs.mjs")], { cwd: REPO, timeout: 300000 }, (err, _out, stderr) =>
                err ? reject(new Error(`tools/build-devs.mjs failed: ${stderr}`)) : resolve()
            )
        )
    }
    const sizes = JSON.parse(readFileSync(SIZES, "utf8")) as Record<string, Sizes>
    return {
        name: "footprint",
        data: { rebuilt, sizes },
        tables: [
            {
                title: "Firmware bytecode (devs build; function bytes by the file they come from)",
                head: ["image", "total", "devs-iot client (src/shared + src/device)", "app", "DeviceScript libraries", "data (strings, header)", "target", "met"],
                rows: IMAGES.filter(([k]) => sizes[k]).map(([k, label]) => {
                    const s = sizes[k]!
                    return [label + (s.keyed && k !== "demo-keyed" ? " (IOT_KEY set: with authentication)" : ""), kb(s.total), kb(s.client), kb(s.app), kb(s.libraries), kb(s.data), k === "demo-keyed" ? "" : "client <= 16 KB", k === "demo-keyed" ? "" : s.client <= 16384 ? "yes" : "no"]
                }),
            },
        ],
    }
}
