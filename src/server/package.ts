// Facts about the installed package: its version, its root folder, and the
// DeviceScript command-line tools it is pinned to (an optional peer
// dependency: only `devs-iot sim` and `devs-iot flash` need them).
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

// dist/src/server/ -> the package root, in a clone and in node_modules alike.
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..")

interface PackageJson {
    name: string
    version: string
    peerDependencies?: Record<string, string>
}

let cached: PackageJson | undefined
function packageJson(): PackageJson {
    cached ??= JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as PackageJson
    return cached
}

export function packageVersion(): string {
    return packageJson().version
}

// The @devicescript/cli version the firmware is built and flashed with.
export function devsVersion(): string {
    return packageJson().peerDependencies?.["@devicescript/cli"] ?? "unknown"
}

// The DeviceScript CLI's entry script, or an error that says how to get it.
// What a command needs and this install lacks: said in one line, no stack.
export class SetupError extends Error {}

export function devsCli(): string {
    try {
        return createRequire(join(PACKAGE_ROOT, "package.json")).resolve("@devicescript/cli/built/devicescript-cli.cjs")
    } catch {
        throw new SetupError(`this command needs the DeviceScript tools: npm install --save-dev @devicescript/cli@${devsVersion()}`)
    }
}
