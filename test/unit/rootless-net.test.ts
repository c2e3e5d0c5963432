import assert from "node:assert/strict";
import { test } from "node:test";
import { networkOff } from "../../src/network/policy.js";
import { pastaArgs, rootlessRulesetText } from "../../src/network/rootless-net.js";

const egress = { ...networkOff(), policy: "egress" as const };

test("pasta never maps the gateway or loopback ports to the host, and publishes on 127.0.0.1 only", () => {
  const a = pastaArgs(egress, "/s/pyro-ws_0123456789abcdef.pasta.pid");
  const opt = (name: string) => a[a.indexOf(name) + 1];
  assert.ok(a.includes("--no-map-gw"));
  assert.equal(opt("--tcp-ns"), "none");
  assert.equal(opt("--udp-ns"), "none");
  assert.equal(opt("--tcp-ports"), "none");
  assert.equal(opt("--udp-ports"), "none");
  assert.equal(opt("--pid"), "/s/pyro-ws_0123456789abcdef.pasta.pid");
  const pub = pastaArgs(
    {
      ...egress,
      policy: "egress+published-ports",
      publish: [
        { host_port: 41000, guest_port: 8000 },
        { host_port: 41001, guest_port: 8001 },
      ],
    },
    "/p",
  );
  assert.equal(pub[pub.indexOf("--tcp-ports") + 1], "127.0.0.1/41000:8000,127.0.0.1/41001:8001");
  // Ports listed under a policy without published ports are not forwarded.
  const off = pastaArgs({ ...egress, publish: [{ host_port: 41000, guest_port: 8000 }] }, "/p");
  assert.equal(off[off.indexOf("--tcp-ports") + 1], "none");
});

test("the namespace's table closes the host before any allow list, in root's order", () => {
  const t = rootlessRulesetText(
    { ...egress, allow_cidrs: ["10.1.2.3/32"], deny_cidrs: ["203.0.113.0/24"] },
    ["192.0.2.53"],
    ["192.0.2.2", "10.247.0.1"],
  );
  const at = (needle: string) => {
    const i = t.indexOf(needle);
    assert.ok(i >= 0, `missing: ${needle}`);
    return i;
  };
  assert.match(t, /set host_addrs \{ type ipv4_addr; elements = \{ 192\.0\.2\.2, 10\.247\.0\.1 \} \}/);
  assert.ok(at("ip daddr @host_addrs goto refuse") < at("@resolvers"));
  assert.ok(at("@resolvers") < at("@user_deny goto refuse"));
  assert.ok(at("@user_deny goto refuse") < at("@user_allow accept"));
  assert.ok(at("@user_allow accept") < at("@default_deny goto refuse"));
  assert.match(t, /hook output priority 0/);
  assert.match(t, /reject with tcp reset/);
  // "off" refuses everything but the namespace's own loopback.
  const off = rootlessRulesetText(networkOff(), [], []);
  assert.doesNotMatch(off, /@user_allow accept/);
  assert.match(off, /oifname "lo" accept\n[\s\S]*goto refuse\n {2}\}/);
});
