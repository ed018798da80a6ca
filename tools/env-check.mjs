// The check that every setting line in .env.defaults / .env.local reaches the
// board as written, for tools/build-devs.mjs: the implementation is
// src/server/envfiles.ts, shared with `devs-iot flash`, compiled by the
// `tsc -p .` that `npm run build` runs before tools/build-devs.mjs.
//   checkEnvFiles(root, parsed): one problem per line that does not arrive as
//   written, each naming the file and line; `parsed` is { NAME: JSON text |
//   null } from tools/devs-settings-hook.cjs (what DeviceScript's parser read).
import { existsSync } from "node:fs"

const compiled = new URL("../dist/src/server/envfiles.js", import.meta.url)
if (!existsSync(compiled)) {
    console.error("devs-iot: dist/src/server/envfiles.js is not built: run `npx tsc -p .` first (`npm run build` does)")
    process.exit(1)
}
export const { checkEnvFiles, parseEnvFiles, parseEnvText } = await import(compiled.href)
