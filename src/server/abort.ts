// Waits that an AbortSignal can end: a waiter joins a list (the readers of a
// link, the waiters for an id), and an abort takes it out again before it is
// given anything, so a line or a Connection never goes to a promise nobody
// awaits. One that was given its value first resolves as if not aborted.

export interface Waiting<T> {
    resolve: (v: T) => void
    reject: (e: Error) => void
}

export interface WaitOptions {
    signal?: AbortSignal // ends the wait: rejects with the signal's reason
}

// A rejection of `call` when `opts` is not a WaitOptions (TypeError) or its
// signal has aborted already (the signal's reason), else undefined: checked
// before anything is taken.
export function refusedWait(call: string, opts: WaitOptions | null | undefined): Promise<never> | undefined {
    if (opts === undefined || opts === null) return undefined
    if (typeof opts !== "object") return Promise.reject(new TypeError(`${call}: options must be an object, got ${typeof opts}`))
    const s = opts.signal as unknown
    if (s === undefined) return undefined
    if (typeof s !== "object" || s === null || typeof (s as AbortSignal).aborted !== "boolean" || typeof (s as AbortSignal).addEventListener !== "function")
        return Promise.reject(new TypeError(`${call}: signal must be an AbortSignal`))
    return (s as AbortSignal).aborted ? Promise.reject((s as AbortSignal).reason) : undefined
}

// A promise for the value handed to the waiter `make` builds, which joins
// `list`; `gone` runs when an abort took it out. `opts` passed refusedWait.
export function enlist<T, W extends Waiting<T>>(list: W[], opts: WaitOptions | null | undefined, make: (resolve: (v: T) => void, reject: (e: Error) => void) => W, gone?: () => void): Promise<T> {
    const signal = opts?.signal
    if (signal === undefined) return new Promise<T>((resolve, reject) => void list.push(make(resolve, reject)))
    return new Promise<T>((resolve, reject) => {
        const onAbort = () => {
            const i = list.indexOf(w)
            if (i < 0) return // given its value already
            list.splice(i, 1)
            gone?.()
            reject(signal.reason)
        }
        const w = make(
            (v) => {
                signal.removeEventListener("abort", onAbort)
                resolve(v)
            },
            (e) => {
                signal.removeEventListener("abort", onAbort)
                reject(e)
            },
        )
        signal.addEventListener("abort", onAbort, { once: true })
        list.push(w)
    })
}
