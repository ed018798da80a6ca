// What every server application the CLI runs (--app) gives back: a way to
// stop it. A file of its own so the apps and their index import it without
// importing each other.
export interface App {
    stop(): void
}
