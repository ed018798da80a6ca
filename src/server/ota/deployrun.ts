// One program deploy over one wssk session, sans-I/O: the gateway's commands
// and the board's replies (runtime/devicescript/network/wssk_health.c:548-567,
// devsmgr.c:220-301). The hash is read before and after; the last write is
// followed by deploy_finish, get_hash and the end of the session in one go, so
// the board's wssk is closed before its new program starts and takes the one
// socket back (docs/operations.md, "The one-socket limitation").
import { Cmd, sha256 } from "./wssk.js"

// Chunks are multiples of 32 bytes (devsmgr.c:287); 192 as the reference gateway.
const CHUNK_BYTES = 192

export interface RunResult {
    ok: boolean
    before?: string // SHA-256 hex of the board's program before (64 zeros: none)
    after?: string
    unchanged?: boolean // the board already ran this image
    written: boolean // deploy_start was accepted: the old program is gone
    started?: boolean // deploy_start was sent: the old program may be gone (the board erases before it answers)
    error?: string
}

interface RunOutput {
    send: Array<[number, Buffer]>
    end?: boolean // end the session after these (WebSocket close, same write)
    result?: RunResult
}

type Step = "idle" | "hash-before" | "start" | "write" | "finish" | "hash-after" | "done"

export class DeployRun {
    readonly hash: string
    private step: Step = "idle"
    private ptr = 0
    private before: string | undefined = undefined
    private written = false
    private started = false

    // `mayReplace(before)`: undefined to go on, or why this board's program
    // must not be replaced (e.g. no image to roll back to).
    constructor(readonly image: Buffer, private mayReplace: (before: string) => string | undefined = () => undefined) {
        this.hash = sha256(image).toString("hex")
    }

    // The same deploy, from the start (for a new session).
    fresh(): DeployRun {
        return new DeployRun(this.image, this.mayReplace)
    }

    get done(): boolean {
        return this.step === "done"
    }

    begin(): RunOutput {
        this.step = "hash-before"
        return { send: [[Cmd.GetHash, Buffer.alloc(0)]] }
    }

    // The board's reply; undefined when the message is not part of the deploy.
    reply(cmd: number, payload: Buffer): RunOutput | undefined {
        if (this.step === "idle" || this.step === "done") return undefined
        if (cmd === Cmd.Error) return this.fail(`the board refused ${this.stepName()}`)
        switch (this.step) {
            case "hash-before": {
                if (cmd !== Cmd.GetHash) return undefined
                if (payload.length < 32) return this.fail("short hash from the board")
                this.before = payload.subarray(0, 32).toString("hex")
                if (this.before === this.hash) return this.finish({ ok: true, unchanged: true, after: this.before })
                const refusal = this.mayReplace(this.before)
                if (refusal) return this.fail(refusal)
                this.step = "start"
                this.started = true
                const size = Buffer.alloc(4)
                size.writeUInt32LE(this.image.length)
                return { send: [[Cmd.DeployStart, size]] }
            }
            case "start":
                if (cmd !== Cmd.DeployStart) return undefined
                this.written = true
                this.step = "write"
                return this.nextWrite()
            case "write":
                if (cmd !== Cmd.DeployWrite) return undefined
                return this.nextWrite()
            case "finish":
                if (cmd !== Cmd.DeployFinish) return undefined
                this.step = "hash-after"
                return { send: [] }
            case "hash-after": {
                if (cmd !== Cmd.GetHash) return undefined
                if (payload.length < 32) return this.fail("short hash from the board")
                const after = payload.subarray(0, 32).toString("hex")
                if (after !== this.hash) return this.fail(`hash check failed: the board reports ${after}`, after)
                return this.finish({ ok: true, after })
            }
        }
        return undefined
    }

    // The session ended before the run did.
    ended(reason: string): RunResult {
        const r = this.result({ ok: false, error: `session ended during ${this.stepName()}: ${reason}` })
        this.step = "done"
        return r
    }

    private nextWrite(): RunOutput {
        if (this.ptr < this.image.length) {
            const chunk = this.image.subarray(this.ptr, this.ptr + CHUNK_BYTES)
            this.ptr += chunk.length
            return { send: [[Cmd.DeployWrite, chunk]] }
        }
        this.step = "finish"
        return {
            send: [
                [Cmd.DeployFinish, Buffer.alloc(0)],
                [Cmd.GetHash, Buffer.alloc(0)],
            ],
            end: true,
        }
    }

    private stepName(): string {
        switch (this.step) {
            case "hash-before":
                return "get_hash"
            case "start":
                return "deploy_start"
            case "write":
                return `deploy_write at byte ${this.ptr}`
            case "finish":
                return "deploy_finish"
            case "hash-after":
                return "get_hash after the deploy"
            default:
                return this.step
        }
    }

    private result(r: Omit<RunResult, "written" | "started" | "before">): RunResult {
        return { before: this.before, written: this.written, started: this.started, ...r }
    }

    private finish(r: Omit<RunResult, "written" | "started" | "before">): RunOutput {
        this.step = "done"
        return { send: [], end: true, result: this.result(r) }
    }

    private fail(error: string, after?: string): RunOutput {
        return this.finish({ ok: false, error, after })
    }
}
