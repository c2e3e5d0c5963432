import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { diskFullFrom, toPyroError } from "../../src/core/errors.js";
import { ensureHostSpace, floorMib, hostSpace, overcommitAllowed } from "../../src/sandbox/host-space.js";

/** The free-space rules of a full host disk (host-space.ts) and the last-resort ENOSPC mapping. */
describe("host space", () => {
  test("the floor: min(1 GiB, 5 %) by default, the operator's value when set, refused when not a number", () => {
    assert.equal(floorMib(400, {}), 20);
    assert.equal(floorMib(252_000, {}), 1024);
    assert.equal(floorMib(252_000, { PYRO_DISK_FLOOR_MIB: "0" }), 0);
    assert.equal(floorMib(400, { PYRO_DISK_FLOOR_MIB: "64" }), 64);
    assert.throws(() => floorMib(400, { PYRO_DISK_FLOOR_MIB: "lots" }), /PYRO_DISK_FLOOR_MIB/);
  });

  test("overcommit only with the operator's PYRO_DISK_OVERCOMMIT=1", () => {
    assert.equal(overcommitAllowed({}), false);
    assert.equal(overcommitAllowed({ PYRO_DISK_OVERCOMMIT: "yes" }), false);
    assert.equal(overcommitAllowed({ PYRO_DISK_OVERCOMMIT: "1" }), true);
  });

  test("a need beyond the free space is disk_full naming the path, the need, the free space and the way out", async () => {
    const free = (await hostSpace("/"))!.free_mib;
    await ensureHostSpace("/", 1, "a thing", { PYRO_DISK_FLOOR_MIB: "0" });
    await assert.rejects(
      ensureHostSpace("/", free + 1024, "a workspace disk of lots", { PYRO_DISK_FLOOR_MIB: "0" }, true),
      (e: Error & { code: string; hint: string }) => {
        assert.equal(e.code, "disk_full");
        assert.match(e.message, /the file system holding \/ has \d+ MiB free/);
        assert.match(e.message, new RegExp(`needs ${free + 1024} MiB`));
        assert.match(e.hint, /smaller disk_mib/);
        assert.match(e.hint, /PYRO_DISK_OVERCOMMIT=1/);
        return true;
      },
    );
    // The floor alone: a floor above the free space refuses a write of nothing.
    await assert.rejects(
      ensureHostSpace("/", 0, "a snapshot", { PYRO_DISK_FLOOR_MIB: String(free + 1) }),
      (e: Error & { code: string; hint: string }) =>
        e.code === "disk_full" && /a snapshot/.test(e.message) && /PYRO_DISK_FLOOR_MIB/.test(e.hint),
    );
  });

  test("ENOSPC and EDQUOT anywhere become disk_full with the path; other errors do not", () => {
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), {
      code: "ENOSPC",
      path: "/state/workspaces/ws_x/commands/3.out",
    });
    const e = toPyroError(enospc);
    assert.equal(e.code, "disk_full");
    assert.match(e.message, /\/state\/workspaces\/ws_x\/commands\/3\.out/);
    assert.match(e.hint ?? "", /free space/);
    assert.equal(toPyroError(Object.assign(new Error("quota"), { code: "EDQUOT" })).code, "disk_full");
    // A child process's text (mkfs, tar) says it in words.
    assert.equal(diskFullFrom(new Error("write failed: No space left on device"))?.code, "disk_full");
    assert.equal(diskFullFrom(Object.assign(new Error("nope"), { code: "ENOENT" })), undefined);
    assert.equal(toPyroError(new Error("other")).code, "engine_failure");
  });
});
