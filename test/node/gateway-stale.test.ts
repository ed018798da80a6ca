// Which up packet ids a gateway that takes a board's session releases
// (PUBREL) before the first line it holds: the ids of the lines the board
// may have had ACKed (on PUBREC) by a gateway that died before the PUBREL.
import assert from "node:assert/strict"
import { stalePacketIds } from "../../src/server/gateway.js"

describe("gateway: stale PUBRELs on taking a board's session", function () {
    it("releases link id 00 (packet id 1) before 01 and within the first window; 00 is sent only once, so never later", function () {
        assert.deepEqual(stalePacketIds(1).slice(0, 3), [1, 256, 255])
        assert.equal(stalePacketIds(1).length, 121)
        assert.deepEqual(stalePacketIds(3).slice(0, 4), [3, 2, 1, 256])
        assert.ok(stalePacketIds(120).includes(1))
        assert.ok(!stalePacketIds(121).includes(1)) // 00 is more than a window back
        // The line's own packet id is never released: the broker may hold it PUBREC'd but not ACKed.
        for (const first of [0, 1, 2, 120, 200, 255]) assert.ok(!stalePacketIds(first).includes(first + 1))
        assert.deepEqual(stalePacketIds(0).slice(0, 2), [256, 255])
        assert.deepEqual(stalePacketIds(200).slice(-1), [81])
    })
})
