import assert from "node:assert/strict";
import { test } from "node:test";
import { handleMayHaveNetwork } from "../../src/engines/gvisor/handle.js";
import type { SandboxHandle } from "../../src/engines/types.js";
import { answeredAddresses, errorReply, nameAllowed, questionName } from "../../src/network/dns-forwarder.js";
import { networkFromInput, networkUpdate } from "../../src/network/input.js";
import { netNames } from "../../src/network/netns.js";
import { rulesetText } from "../../src/network/nft.js";
import {
  inCidr,
  networkOff,
  parseCidr,
  parseHostName,
  parsePublish,
  resolvePolicy,
} from "../../src/network/policy.js";

test("CIDRs, names and ports are parsed strictly and normalised", () => {
  assert.equal(parseCidr("203.0.113.7"), "203.0.113.7/32");
  assert.equal(parseCidr("10.1.2.3/8"), "10.0.0.0/8");
  for (const bad of ["10.0.0.256", "10.0.0.0/33", "::1", "example.com", ""])
    assert.throws(() => parseCidr(bad), /not an IPv4 CIDR/);
  assert.equal(parseHostName("Example.COM."), "example.com");
  assert.equal(parseHostName("*.example.com"), "*.example.com");
  for (const bad of ["exa mple.com", "-x.com", "a..b", "*"])
    assert.throws(() => parseHostName(bad), /not a host name/);
  assert.deepEqual(parsePublish("8080"), { guest_port: 8080 });
  assert.deepEqual(parsePublish("18080:8080"), { host_port: 18080, guest_port: 8080 });
  for (const bad of ["0", "70000", "a:80", "1:2:3"])
    assert.throws(() => parsePublish(bad), /not a port to publish/);
  assert.ok(inCidr("169.254.169.254", "169.254.0.0/16"));
  assert.ok(!inCidr("203.0.113.1", "10.0.0.0/8"));
});

test("the old boolean is egress; contradictions and rules without network are refused", async () => {
  assert.equal(resolvePolicy({ network: true }), "egress");
  assert.equal(resolvePolicy({ network: false }), "off");
  assert.equal(resolvePolicy({ network: false, network_policy: "egress" }), "egress");
  assert.throws(() => resolvePolicy({ network: true, network_policy: "off" }), /contradicts/);
  await assert.rejects(
    networkFromInput({ network_policy: "off", allow_cidr: ["10.0.0.0/8"] }),
    /need network/,
  );
  assert.equal((await networkFromInput({ allow_host: ["example.com"] })).policy, "egress");
  await assert.rejects(
    networkFromInput({ network_policy: "egress", publish: ["80"] }),
    /egress\+published-ports/,
  );
  const p = await networkFromInput({ publish: ["8000"] });
  assert.equal(p.policy, "egress+published-ports");
  assert.equal(p.publish[0]?.guest_port, 8000);
  assert.ok((p.publish[0]?.host_port ?? 0) > 0);
  // An update that switches to plain egress closes the ports; one without network fields is no change.
  assert.deepEqual((await networkUpdate(p, { network_policy: "egress" }))?.publish, []);
  assert.equal(await networkUpdate(p, {}), undefined);
  const more = await networkUpdate({ ...networkOff(), policy: "egress" }, { publish: ["9000"] });
  assert.equal(more?.policy, "egress+published-ports");
});

test("names of a sandbox's network objects come from its id and fit the kernel's limits", () => {
  const n = netNames("ws_0123456789abcdef");
  assert.equal(n.netns, "pyro-ws_0123456789abcdef");
  assert.equal(n.hostIf, "pvw0123456789ab");
  assert.ok(n.hostIf.length <= 15);
  assert.equal(n.table, "pyro_ws_0123456789abcdef");
  assert.notEqual(netNames("vm_0123456789abcdef").hostIf, n.hostIf);
  assert.throws(() => netNames("ws_../../etc"), /not a sandbox id/);
});

test("the nftables table: default deny, user lists in order, host closed, ports only with the publishing policy", () => {
  const plumbing = { ...netNames("ws_0123456789abcdef"), gateway: "10.247.0.1", guestIp: "10.247.0.2" };
  const spec = {
    ...networkOff(),
    policy: "egress+published-ports" as const,
    allow_cidrs: ["10.9.0.0/16"],
    deny_cidrs: ["203.0.113.0/24"],
    publish: [{ host_port: 18080, guest_port: 8080 }],
  };
  const text = rulesetText({ plumbing, spec, resolvers: ["192.0.2.53"], forwarder: false });
  assert.match(
    text,
    /^add table inet pyro_ws_0123456789abcdef\ndelete table inet pyro_ws_0123456789abcdef\n/,
  );
  for (const range of [
    "10.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
  ])
    assert.ok(text.includes(range), range);
  const order = ["10.247.0.0/16", "@resolvers", "@user_deny", "@user_allow", "@default_deny"].map((s) =>
    text.indexOf(`ip daddr ${s}`),
  );
  assert.ok(order.every((i) => i >= 0));
  assert.deepEqual(
    [...order].sort((a, b) => a - b),
    order,
    "other sandboxes, resolvers, deny, allow, default deny in that order",
  );
  assert.match(text, /iifname "pvw0123456789ab" goto refuse/);
  // Refusals are a reset or an ICMP error (a client fails at once), never a silent drop.
  assert.match(
    text,
    /chain refuse \{\n\s+meta l4proto tcp reject with tcp reset\n\s+reject with icmpx admin-prohibited\n/,
  );
  const fromRules = text.slice(text.indexOf("chain egress"), text.indexOf("chain to_sandbox"));
  assert.deepEqual(
    fromRules.split("\n").filter((l) => /\bdrop\b/.test(l)),
    ["    meta nfproto ipv6 drop"],
    "the sandbox's IPv4 is refused, never dropped",
  );
  // What leaves this sandbox is judged (in its own table) before any table's guard of what
  // enters a sandbox: a lower priority on the forward hook, whatever order tables were made in.
  const prio = (chain: string) =>
    Number(
      new RegExp(`chain ${chain} \\{\\n\\s+type filter hook forward priority (-?\\d+);`).exec(text)?.[1],
    );
  assert.ok(prio("from_sandbox") < prio("to_sandbox"), `${prio("from_sandbox")} < ${prio("to_sandbox")}`);
  assert.match(text, /chain from_sandbox \{[^}]*iifname "pvw0123456789ab" jump egress\n\s+\}/);
  assert.match(text, /chain to_sandbox \{[^}]*oifname "pvw0123456789ab" drop\n\s+\}/);
  assert.match(text, /ip daddr 127\.0\.0\.1 tcp dport 18080 dnat ip to 10\.247\.0\.2:8080/);
  const egress = rulesetText({
    plumbing,
    spec: { ...spec, policy: "egress" },
    resolvers: [],
    forwarder: false,
  });
  assert.doesNotMatch(egress, /dnat/);
  const hosts = rulesetText({
    plumbing,
    spec: { ...spec, allow_hosts: ["example.com"] },
    resolvers: ["192.0.2.53"],
    forwarder: true,
  });
  assert.match(hosts, /ip daddr @answered accept\n\s+goto refuse/);
  assert.match(hosts, /ip daddr 10\.247\.0\.1 meta l4proto \{ tcp, udp \} th dport 53 accept/);
  const off = rulesetText({ plumbing, spec: networkOff(), resolvers: [], forwarder: false });
  assert.match(
    off,
    /chain egress \{\n\s+meta nfproto ipv6 drop\n\s+ct state established,related accept\n\s+goto refuse\n/,
  );
});

/** A DNS message: header, one question, answers (name as a pointer to the question). */
function dnsMessage(name: string, answers: { type: number; data: number[]; ttl: number }[]): Buffer {
  const q = Buffer.concat([
    ...name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0, 0, 1, 0, 1]),
  ]);
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0x1234, 0);
  head.writeUInt16BE(0x8180, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(answers.length, 6);
  const ans = answers.map((a) => {
    const b = Buffer.alloc(12 + a.data.length);
    b.writeUInt16BE(0xc00c, 0);
    b.writeUInt16BE(a.type, 2);
    b.writeUInt16BE(1, 4);
    b.writeUInt32BE(a.ttl, 6);
    b.writeUInt16BE(a.data.length, 10);
    Buffer.from(a.data).copy(b, 12);
    return b;
  });
  return Buffer.concat([head, q, ...ans]);
}

test("the DNS forwarder reads names and A records, and refuses names off the list", () => {
  const msg = dnsMessage("api.Example.com", [
    { type: 5, data: [0xc0, 12], ttl: 30 },
    { type: 1, data: [203, 0, 113, 9], ttl: 120 },
  ]);
  assert.equal(questionName(msg), "api.Example.com");
  assert.deepEqual(answeredAddresses(msg), [{ ip: "203.0.113.9", ttl: 120 }]);
  assert.ok(nameAllowed("api.example.com", ["*.example.com"]));
  assert.ok(nameAllowed("Example.com.", ["example.com"]));
  assert.ok(!nameAllowed("evil-example.com", ["*.example.com", "example.com"]));
  assert.ok(!nameAllowed("example.com.evil.net", ["example.com"]));
  const nx = errorReply(msg, 3);
  assert.equal(nx.readUInt16BE(0), 0x1234);
  assert.equal(nx.readUInt16BE(2) & 0xf, 3);
  assert.equal(nx.readUInt16BE(6), 0);
  assert.equal(questionName(nx), "api.Example.com");
});

test("a gVisor sandbox made with --network=none has no network to tear down; any other (or unknown) may", () => {
  const handle = (data: Record<string, unknown>): SandboxHandle => ({
    engine: "gvisor",
    id: "ws_1",
    sandboxDir: "/s",
    data: { containerId: "pyro-ws_1", ...data },
  });
  const flags = (...global: string[]) => ({ flags: { binary: "/usr/bin/runsc", global } });
  assert.equal(handleMayHaveNetwork(handle(flags("--root=/r", "--network=none"))), false);
  assert.equal(handleMayHaveNetwork(handle(flags("--root=/r", "--network=host"))), true);
  assert.equal(handleMayHaveNetwork(handle({})), true);
  // With a network of pyro's recorded, or a damaged handle: torn down to be sure.
  assert.equal(handleMayHaveNetwork(handle({ ...flags("--network=none"), net: {} })), true);
  assert.equal(handleMayHaveNetwork({ engine: "gvisor", id: "ws_1", sandboxDir: "/s", data: {} }), true);
});
