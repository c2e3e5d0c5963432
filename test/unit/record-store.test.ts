import assert from "node:assert/strict";
import { mkdir, rm, stat } from "node:fs/promises";
import { after, before, test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import { newId } from "../../src/core/ids.js";
import { RecordStore } from "../../src/sandbox/record-store.js";
import { acquireLock } from "../../src/util/lock.js";
import { tempDir } from "../helpers.js";

interface Rec {
  id: string;
  state: string;
  expires_at: string;
  created_at: string;
}

let root: string;
let store: RecordStore<Rec>;
before(async () => {
  root = await tempDir("pyro-unit-records-");
  store = new RecordStore<Rec>({
    root,
    kind: "ws",
    file: "rec.json",
    idOf: (r) => r.id,
    notFound: (id) => new PyroError("not_found", `no record ${id}`),
    unreadable: (id, why) => new PyroError("invalid_state", `record ${id}: ${why}`),
    schema: {
      safeParse: (raw) => ({ success: true, data: raw as Rec }),
    },
  });
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function add(state = "running"): Promise<string> {
  const id = newId("ws");
  await mkdir(store.dir(id), { recursive: true });
  await store.write(id, {
    id,
    state,
    expires_at: new Date(Date.now() + 60_000).toISOString(),
    created_at: new Date().toISOString(),
  });
  return id;
}

const fail = (r: Rec) => {
  r.state = "failed";
};

test("a view does not wait behind another operation's lock, and update does", async () => {
  const id = await add();
  const release = await acquireLock(store.path(id));
  const t0 = performance.now();
  assert.equal(await store.updateIfFree(id, fail), undefined);
  assert.equal(await store.lockedIfFree(id, async () => 1), undefined);
  assert.ok(performance.now() - t0 < 500, "answered without waiting");
  assert.equal(await store.busy(id), true);
  const waiting = store.update(id, fail);
  await new Promise((r) => setTimeout(r, 100));
  await release();
  assert.equal((await waiting).state, "failed");
  assert.equal(await store.busy(id), false);
});

test("list skips records that vanish while it reads, and locked directories without a record", async () => {
  const keep = await add();
  const vanishing = await add();
  const deleting = await add();
  // A delete in progress: its lock is held and its record file already gone.
  const release = await acquireLock(store.path(deleting));
  await rm(store.path(deleting));
  const ids = await store.list(
    async (r) => {
      if (r.id === vanishing) {
        await rm(store.dir(vanishing), { recursive: true, force: true });
        throw new PyroError("not_found", `no record ${r.id}`);
      }
      return { id: r.id, created_at: r.created_at };
    },
    async (e) => ({ id: `damaged ${e.id}`, created_at: "" }),
  );
  const mine = new Set([keep, vanishing, deleting, `damaged ${vanishing}`, `damaged ${deleting}`]);
  assert.deepEqual(
    ids.map((v) => v.id).filter((v) => mine.has(v)),
    [keep],
  );
  await release();
  await rm(store.dir(deleting), { recursive: true, force: true });
  await rm(store.dir(keep), { recursive: true, force: true });
});

test("a record's lock never brings back its deleted directory", async () => {
  const id = await add();
  await rm(store.dir(id), { recursive: true, force: true });
  await assert.rejects(
    store.update(id, () => undefined),
    { code: "not_found" },
  );
  await assert.rejects(
    store.locked(id, async () => 1),
    { code: "not_found" },
  );
  await assert.rejects(
    store.lockedIfFree(id, async () => 1),
    { code: "not_found" },
  );
  await assert.rejects(stat(store.dir(id)), { code: "ENOENT" });
});
