// The gateway's MQTT topic layout and its checks of outside input (pure).
import assert from "node:assert/strict"
import { boardTopic, downLine, linkRecord, linkTopic, parseBoardTopic, parseLinkRecord, payloadProblem, sessionClientId, topicIdProblem } from "../../src/server/topics.js"

describe("MQTT gateway topics", function () {
    it("lays out a board's topics and session client id", function () {
        assert.equal(boardTopic("b1", "up"), "devs-iot/b1/up")
        assert.equal(boardTopic("b1", "down"), "devs-iot/b1/down")
        assert.equal(boardTopic("b1", "status"), "devs-iot/b1/status")
        assert.equal(sessionClientId("b1"), "devs-iot-b1")
        assert.deepEqual(parseBoardTopic("devs-iot/b1/down"), { id: "b1", kind: "down" })
    })
    it("refuses board ids that cannot be one topic level, naming why", function () {
        assert.match(topicIdProblem("a/b"), /'\/'/)
        assert.match(topicIdProblem("a+b"), /wildcard/)
        assert.match(topicIdProblem("a#"), /wildcard/)
        assert.match(topicIdProblem("$SYS"), /reserved/)
        assert.notEqual(topicIdProblem(""), "")
        assert.equal(topicIdProblem("board-1"), "")
        // What Mosquitto refuses in a topic or client id (it drops the connection).
        for (const id of ["a\u007fb", "a\u0085b", "a\u009fb", "a\ufdd0b", "a\ufffeb", "a\uffffb", "a\u{1fffe}b", "a\u{10ffff}b"]) assert.match(topicIdProblem(id), /control character or non-character/, JSON.stringify(id))
        for (const id of ["k\u00fcche", "a\u00a0b", "a\ufffdb", "a\u{1f600}b", "a\u{1fffd}b"]) assert.equal(topicIdProblem(id), "", JSON.stringify(id))
    })
    it("reads a topic back or says what is wrong with it", function () {
        assert.match((parseBoardTopic("devs-iot/a/b/down") as { problem: string }).problem, /expected devs-iot\/<id>/)
        assert.match((parseBoardTopic("other/b1/down") as { problem: string }).problem, /does not start/)
        assert.match((parseBoardTopic("devs-iot/b1/sideways") as { problem: string }).problem, /up, down or status/)
        assert.match((parseBoardTopic("devs-iot/+/down") as { problem: string }).problem, /wildcard/)
    })
    it("reads a board's link record (the epoch of its down lines, the board's life) back, or says what is wrong with it", function () {
        assert.equal(linkTopic("b1"), "devs-iot/$link/b1")
        assert.deepEqual(parseLinkRecord("devs-iot/$link/b1", Buffer.from("0a1b2c3d")), { id: "b1", epoch: "0a1b2c3d", board: "" })
        assert.deepEqual(parseLinkRecord("devs-iot/$link/b1", Buffer.alloc(0)), { id: "b1", epoch: "", board: "" })
        // With the board's epoch (its life), and with that alone.
        assert.deepEqual(parseLinkRecord("devs-iot/$link/b1", Buffer.from(linkRecord("0a1b2c3d", "e5f6a7b8"))), { id: "b1", epoch: "0a1b2c3d", board: "e5f6a7b8" })
        assert.deepEqual(parseLinkRecord("devs-iot/$link/b1", Buffer.from(linkRecord("", "e5f6a7b8"))), { id: "b1", epoch: "", board: "e5f6a7b8" })
        assert.equal(linkRecord("", ""), "")
        assert.match((parseLinkRecord("devs-iot/$link/b1", Buffer.from("0a1b2c3d e5 f6")) as { problem: string }).problem, /board epoch "e5 f6" is not 1-64 printable ASCII/)
        assert.match((parseLinkRecord("devs-iot/$link/b1", Buffer.from("0A1B 2c3d")) as { problem: string }).problem, /not 8-32 lowercase hex digits/)
        assert.match((parseLinkRecord("devs-iot/$link/$x", Buffer.from("0a1b2c3d")) as { problem: string }).problem, /reserved/)
        assert.match((parseLinkRecord("devs-iot/b1/status", Buffer.from("0a1b2c3d")) as { problem: string }).problem, /expected devs-iot\/\$link/)
    })
    it("takes a down payload's one line end at its end off (a file or stdin published whole), and nothing else", function () {
        for (const [given, line] of [["on\n", "on"], ["on\r\n", "on"], ["on", "on"], ["on\r", "on\r"], ["on\n\n", "on\n"], ["\n", ""], ["\r\n", ""], ["", ""]])
            assert.equal(downLine(Buffer.from(given)).toString(), line, JSON.stringify(given))
    })
    it("refuses down payloads that cannot be a line: empty, oversize, newline, not UTF-8", function () {
        assert.equal(payloadProblem(Buffer.from("hello"), 100), "")
        assert.match(payloadProblem(Buffer.alloc(0), 100), /empty/)
        assert.match(payloadProblem(Buffer.alloc(101, 97), 100), /101 bytes over the line limit \(100\)/)
        assert.match(payloadProblem(Buffer.from("a\nb"), 100), /newline/)
        assert.match(payloadProblem(Buffer.from([0xff, 0xfe]), 100), /UTF-8/)
        assert.match(payloadProblem(Buffer.from([0x61, 0xed, 0xa0, 0x80]), 100), /UTF-8/) // an encoded surrogate
        assert.match(payloadProblem(Buffer.from([0x61, 0xe2, 0x82]), 100), /UTF-8/) // cut short
        // Valid UTF-8: U+FFFD itself, a BOM, CR and NUL are bytes of a line like any other.
        for (const ok of ["a\ufffdb", "\ufeffx", "a\rb\r", "a\u0000b", "\u{1f600}"]) assert.equal(payloadProblem(Buffer.from(ok), 100), "", JSON.stringify(ok))
    })
})
