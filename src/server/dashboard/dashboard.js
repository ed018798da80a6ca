// The fleet dashboard: the board list from /api/boards, then changes and a
// tick a second from /api/events (server-sent events). Every string that
// comes from a board is set as text (textContent), never parsed as HTML,
// with the characters that print nothing made visible.
"use strict"

const MAX_ROWS = 5000 // the page shows at most this many boards
const POINTS = 120 // chart history: two minutes of ticks

const rows = new Map() // board id -> <tr>
const tbody = document.getElementById("boards")
const history = [] // { at, rtt, inRate, outRate }
let last = null // the previous tick, for rates
let loading = null
let ticks = 0
const REFRESH_TICKS = 5

// Characters that print nothing or move others (controls, bidi overrides,
// zero-width ones, line separators) shown as \u{...}, and a backslash as
// \\: an id such as "invoice\u{202E}fdp.exe" must not pass for another.
function visible(text) {
    return text.replace(/[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) => (c === "\\" ? "\\\\" : "\\u{" + c.codePointAt(0).toString(16).toUpperCase() + "}"))
}

function show(el, value) {
    el.textContent = value === null || value === undefined ? "–" : visible(String(value))
}

function ago(iso) {
    if (!iso) return null
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
    if (s < 120) return s + " s ago"
    if (s < 7200) return Math.round(s / 60) + " min ago"
    return Math.round(s / 3600) + " h ago"
}

function duration(s) {
    if (typeof s !== "number") return null
    if (s < 120) return s + " s"
    if (s < 7200) return Math.round(s / 60) + " min"
    if (s < 172800) return Math.round(s / 3600) + " h"
    return Math.round(s / 86400) + " d"
}

const COLUMNS = [
    ["id", (b) => b.id],
    ["state", (b) => (b.up ? "up" : "down")],
    ["since", (b) => ago(b.since)],
    ["address", (b) => b.address],
    ["rtt", (b) => (b.roundTripMs === null ? null : b.roundTripMs + " ms")],
    ["queued", (b) => b.queuedOut + " / " + b.queuedIn],
    ["outages", (b) => b.outages],
    ["reconnects", (b) => (b.report ? b.report.reconnects : b.reconnects)],
    ["reason", (b) => b.lastReason],
    ["firmware", (b) => b.report && b.report.firmware],
    ["uptime", (b) => b.report && duration(b.report.uptime)],
    ["heap", (b) => b.report && (b.report.heap === null ? null : b.report.heap + " B")],
    ["rssi", (b) => b.report && (b.report.rssi === null ? null : b.report.rssi + " dBm")],
    ["reset", (b) => b.report && b.report.reset],
]

function render(b) {
    let tr = rows.get(b.id)
    if (!tr) {
        if (rows.size >= MAX_ROWS) return
        tr = document.createElement("tr")
        for (const [name] of COLUMNS) {
            const td = document.createElement("td")
            td.className = name
            tr.appendChild(td)
        }
        rows.set(b.id, tr)
        tbody.appendChild(tr)
    }
    tr.className = b.up ? "up" : "down"
    tr.dataset.state = b.up ? "up" : "down"
    tr.dataset.since = b.since || ""
    COLUMNS.forEach(([, get], i) => show(tr.children[i], get(b)))
    tr.children[0].title = visible(b.id)
}

async function load() {
    if (loading) return loading
    loading = (async () => {
        const seen = new Set()
        let offset = 0
        let total = 0
        while (offset !== null && seen.size < MAX_ROWS) {
            const r = await fetch("/api/boards?offset=" + offset)
            if (!r.ok) throw new Error("GET /api/boards: " + r.status)
            const page = await r.json()
            total = page.total
            for (const b of page.boards) {
                seen.add(b.id)
                render(b)
            }
            offset = page.next
        }
        for (const [id, tr] of rows) if (!seen.has(id)) (tr.remove(), rows.delete(id))
        const more = document.getElementById("more")
        more.hidden = total <= rows.size
        show(more, total - rows.size + " more boards not shown (see /api/boards)")
    })().finally(() => (loading = null))
    return loading
}

function onTick(t) {
    show(document.getElementById("sum-boards"), t.boards)
    show(document.getElementById("sum-up"), t.up)
    show(document.getElementById("sum-rtt"), t.roundTripMs === null ? null : t.roundTripMs + " ms")
    show(document.getElementById("sum-resent"), t.resent)
    if (last && t.at > last.at) {
        const s = (t.at - last.at) / 1000
        const point = { rtt: t.roundTripMs, inRate: Math.max(0, (t.linesIn - last.linesIn) / s), outRate: Math.max(0, (t.linesOut - last.linesOut) / s) }
        history.push(point)
        if (history.length > POINTS) history.shift()
        show(document.getElementById("sum-in"), point.inRate.toFixed(1))
        show(document.getElementById("sum-out"), point.outRate.toFixed(1))
        draw(document.getElementById("chart-rtt"), [["rtt", "#555"]])
        draw(document.getElementById("chart-traffic"), [["inRate", "#27c"], ["outRate", "#c72"]])
    }
    last = t
    // Counters (round trip, queues) change without an event: refresh the list now and then.
    if (++ticks % REFRESH_TICKS === 0) load().catch(() => {})
    // Relative times ("5 s ago") move on without an event.
    for (const tr of rows.values()) show(tr.children[2], ago(tr.dataset.since))
}

function draw(canvas, series) {
    const g = canvas.getContext("2d")
    const w = canvas.width
    const h = canvas.height
    const pad = 30
    g.clearRect(0, 0, w, h)
    let max = 0
    for (const p of history) for (const [k] of series) if (p[k] !== null && p[k] > max) max = p[k]
    max = max > 0 ? max * 1.1 : 1
    g.strokeStyle = "#ddd"
    g.fillStyle = "#777"
    g.font = "11px system-ui, sans-serif"
    g.beginPath()
    g.moveTo(pad, 5)
    g.lineTo(pad, h - 15)
    g.lineTo(w - 5, h - 15)
    g.stroke()
    g.fillText(max.toPrecision(3), 2, 12)
    g.fillText("0", 2, h - 15)
    const x = (i) => pad + ((w - pad - 5) * i) / (POINTS - 1)
    const y = (v) => h - 15 - ((h - 20) * v) / max
    for (const [k, color] of series) {
        g.strokeStyle = color
        g.beginPath()
        let started = false
        history.forEach((p, i) => {
            if (p[k] === null) return (started = false)
            const X = x(i + POINTS - history.length)
            if (started) g.lineTo(X, y(p[k]))
            else g.moveTo(X, y(p[k]))
            started = true
        })
        g.stroke()
    }
}

function connect() {
    const state = document.getElementById("stream")
    const es = new EventSource("/api/events")
    es.onopen = () => {
        state.className = "stream live"
        show(state, "live")
        load().catch((e) => show(state, String(e)))
    }
    es.onerror = () => {
        state.className = "stream"
        show(state, "reconnecting…")
    }
    es.addEventListener("boards", (e) => JSON.parse(e.data).forEach(render))
    es.addEventListener("tick", (e) => onTick(JSON.parse(e.data)))
    es.addEventListener("reload", () => load())
}

connect()
