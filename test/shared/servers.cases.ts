import { nextServer, parseServers } from "../../src/shared/servers.js"
import { eq, ok, suite } from "./harness.js"

export const serversSuite = suite("servers", function (test) {
    test("server list: one address, host:port, and several tried in turn", async function () {
        const one = parseServers("srv.lan", 8123)
        eq(one.problem, "", "one address")
        eq(one.list.length, 1, "one")
        eq(one.list[0].host + ":" + one.list[0].port, "srv.lan:8123", "default port")
        const three = parseServers("a:9000, b ,10.0.0.3:9002", 8123)
        eq(three.problem, "", "a list")
        eq(three.list.length, 3, "three")
        eq(three.list[0].host + ":" + three.list[0].port, "a:9000", "first")
        eq(three.list[1].host + ":" + three.list[1].port, "b:8123", "second, default port")
        eq(three.list[2].host + ":" + three.list[2].port, "10.0.0.3:9002", "third")
        eq(nextServer(0, 3), 1, "next")
        eq(nextServer(2, 3), 0, "wraps")
        eq(nextServer(0, 1), 0, "one address: stays")
    })
    test("server list: a bad list is refused with what is wrong", async function () {
        ok(parseServers("", 8123).problem.indexOf("no server") >= 0, "empty")
        ok(parseServers("a,,b", 8123).problem.indexOf("empty address") >= 0, "empty item")
        ok(parseServers("a:0", 8123).problem.indexOf("port of \"a:0\"") >= 0, "port 0")
        ok(parseServers("a:x", 8123).problem.indexOf("port") >= 0, "port not a number")
        ok(parseServers(":80", 8123).problem.indexOf("bad host") >= 0, "no host")
    })
})
