import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, rm, stat, statfs } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  GVISOR_ENV,
  gvisorSkipReason,
  runCli,
  runCliJson,
  runCliJsonGuest,
  tempDir,
  unmountUnder,
} from "../helpers.js";

/**
 * A full host disk (issue 31). pyro's state dir is put on a small loop file system this test
 * makes (400 MiB), so the host can be filled for real without touching the machine's disk:
 * - creates beyond the space pyro can reserve are refused with `disk_full`, naming the path,
 *   the need and the free space;
 * - with preallocated images (the default), filling the host does not lose a guest write that
 *   reported success: it reads back after the kernel had to write it to the image;
 * - on the full host, exec, create and run name the full disk (no stack trace, no ENOENT);
 * - with the operator's PYRO_DISK_OVERCOMMIT=1 (sparse images), a workspace whose disk went
 *   read-only is listed `failed` with the reason, and after space is freed `workspace start`
 *   (which repairs the disk with e2fsck) brings it back with its synced data;
 * - nothing is left mounted and no loop device leaked.
 */

type Json = Record<string, unknown>;
type Err = { error: { code: string; message: string; hint?: string } };

function sh(file: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((res) =>
    execFile(file, args, (err, stdout, stderr) =>
      res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    ),
  );
}

let skip: string | undefined;
let base = "";
let host = "";
let env: NodeJS.ProcessEnv = {};

before(async () => {
  skip = await gvisorSkipReason();
  if (skip) return;
  for (const tool of ["mkfs.ext4", "fallocate", "losetup", "e2fsck"])
    if ((await sh("sh", ["-c", `command -v ${tool}`])).code !== 0) skip = `${tool} is not installed`;
  if (skip) return;
  base = await tempDir("pyro-diskfull-");
  host = join(base, "host");
  await mkdir(host);
  const img = join(base, "host.img");
  const mk = await sh("sh", ["-c", `truncate -s 400M ${img} && mkfs.ext4 -q -F -m 0 ${img}`]);
  const mnt = mk.code === 0 ? await sh("mount", ["-o", "loop", img, host]) : mk;
  if (mnt.code !== 0) {
    skip = `cannot make a loop file system here: ${mnt.out.trim()}`;
    await rm(base, { recursive: true, force: true });
    return;
  }
  const stateDir = join(host, "state");
  // The shared environment cache (PYRO_CACHE_DIR, or the default) stays where it is: only the
  // state (workspace images, records, command logs) is on the small file system.
  env = { ...process.env, ...GVISOR_ENV, PYRO_STATE_DIR: stateDir, PYRO_QUIET: "1", PYRO_POOL_SIZE: "0" };
  delete env.PYRO_DISK_OVERCOMMIT;
  delete env.PYRO_DISK_FLOOR_MIB;
});

after(async () => {
  if (!base) return;
  // Whatever a failed assertion left (a passing run deletes its workspaces itself).
  await unfill();
  const left = await runCliJson<{ workspaces?: Json[] }>(["workspace", "list"], { env }).catch(
    () => undefined,
  );
  for (const w of left?.json.workspaces ?? [])
    await runCli(["workspace", "delete", String(w.workspace_id)], { env }).catch(() => undefined);
  await unmountUnder(host);
  await sh("umount", [host]);
  // The loop device goes with the mount (mount -o loop sets autoclear); a leaked one is a failure.
  const loops = (await sh("losetup", ["-a"])).out;
  const mounts = await readFile("/proc/self/mountinfo", "utf8");
  await rm(base, { recursive: true, force: true });
  assert.ok(!mounts.includes(base), `nothing mounted under ${base} is left:\n${mounts}`);
  assert.ok(!loops.includes(base), `no loop device of ${base} is left:\n${loops}`);
});

async function freeMib(): Promise<number> {
  const s = await statfs(host);
  return Math.floor((s.bavail * s.bsize) / 2 ** 20);
}

/**
 * Fills the host file system to the last block (fallocate, then dd for what it left). Blocks
 * freed by a delete come back only when ext4 commits its journal (up to 5 s later), so it
 * commits (`sync -f`) and fills again until nothing is left to fill.
 */
let fillers = 0;
async function fill(): Promise<void> {
  for (let round = 0; round < 5; round++) {
    await sh("sync", ["-f", host]);
    const free = await freeMib();
    if (free > 1) await sh("fallocate", ["-l", `${free - 1}MiB`, join(host, `filler-${fillers++}`)]);
    await sh("dd", ["if=/dev/zero", `of=${join(host, `filler-${fillers++}`)}`, "bs=4k", "status=none"]);
    await sh("sync", ["-f", host]);
    if ((await statfs(host)).bavail === 0) break;
  }
  assert.ok((await freeMib()) < 1, `the host is full (${await freeMib()} MiB free)`);
}

async function unfill(): Promise<void> {
  for (const n of await readdir(host)) if (n.startsWith("filler-")) await rm(join(host, n), { force: true });
}

function assertNamesFullDisk(what: string, r: { code: number | null; json: Json | Err; stderr: string }) {
  assert.notEqual(r.code, 0, `${what} fails on a full host`);
  const e = (r.json as Err).error;
  assert.ok(e, `${what}: an error object, got ${JSON.stringify(r.json)}`);
  assert.equal(e.code, "disk_full", `${what}: ${JSON.stringify(e)}`);
  assert.match(e.message, /space|quota/, `${what}: the message names the full disk`);
  assert.ok(e.hint && /free space/.test(e.hint), `${what}: a hint says the way out: ${e.hint}`);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, `${what}: no stack trace`);
  assert.doesNotMatch(e.message, /ENOENT/, `${what}: not ENOENT`);
}

async function listed(): Promise<Json[]> {
  const r = await runCliJson<{ workspaces: Json[] }>(["workspace", "list"], { env });
  assert.equal(r.code, 0, JSON.stringify(r.json));
  return r.json.workspaces;
}

async function exec(id: string, script: string) {
  return runCliJsonGuest<Json & { exit_code: number; stdout: string; stderr: string }>(
    ["workspace", "exec", id, "--", "sh", "-c", script],
    { env },
  );
}

async function statusOf(id: string): Promise<Json & { state: string; reason: string | null }> {
  const r = await runCliJson<Json & { state: string; reason: string | null }>(["workspace", "status", id], {
    env,
  });
  assert.equal(r.code, 0, JSON.stringify(r.json));
  return r.json;
}

test("preallocated disks: a create the host cannot back is refused, and filling the host loses no write", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  // More than the 400 MiB file system can reserve: refused before anything is made.
  const big = await runCliJson<Err>(["workspace", "create", "--disk-mib", "512"], { env });
  assert.notEqual(big.code, 0);
  assert.equal(big.json.error.code, "disk_full", JSON.stringify(big.json));
  assert.match(big.json.error.message, new RegExp(`${host}.* MiB free.*512 MiB`), big.json.error.message);
  assert.match(big.json.error.hint ?? "", /disk_mib/);
  assert.match(big.json.error.hint ?? "", /PYRO_DISK_OVERCOMMIT/);

  const ws = await runCliJson<Json & { workspace_id: string; disk_enforced: boolean }>(
    ["workspace", "create", "--disk-mib", "160"],
    { env },
  );
  assert.equal(ws.code, 0, JSON.stringify(ws.json));
  assert.equal(ws.json.disk_enforced, true);
  const id = ws.json.workspace_id;
  // Preallocated: the image holds its 160 MiB of host blocks (mkfs did not discard them).
  const img = await stat(join(host, "state", "workspaces", id, "disk.img"));
  assert.ok(img.blocks * 512 >= 160 * 2 ** 20, `disk.img has ${img.blocks * 512} bytes of blocks`);

  // The reservations add up: a second disk of what is left is refused.
  const left = await freeMib();
  const more = await runCliJson<Err>(["workspace", "create", "--disk-mib", String(left)], { env });
  assert.equal(more.json.error?.code, "disk_full", JSON.stringify(more.json));
  assert.deepEqual(
    (await listed()).map((w) => w.workspace_id),
    [id],
    "refused creates leave nothing",
  );

  // A write the guest saw succeed (not synced: it sits in the page cache), then a full host.
  const w = await exec(id, "head -c 40M /dev/urandom > /workspace/data && sha256sum /workspace/data");
  assert.equal(w.json.exit_code, 0, JSON.stringify(w.json));
  const sum = w.json.stdout.split(" ")[0];
  await fill();

  // On the full host: exec, create and run name the full disk.
  const ex = await exec(id, "echo hi");
  if (ex.code !== 0) assertNamesFullDisk("exec", ex);
  assertNamesFullDisk("create", await runCliJson(["workspace", "create", "--disk-mib", "64"], { env }));
  assertNamesFullDisk("run", await runCliJsonGuest(["run", "--", "true"], { env }));
  const cr = await runCliJson<Err>(["workspace", "create", "--disk-mib", "64"], { env });
  assert.match(cr.json.error.message, /PYRO_DISK_FLOOR_MIB/, "the floor is named");
  // Without the floor (and the reservation) answering first, the writes themselves meet the
  // full disk: still disk_full, not the ENOENT Node's recursive mkdir reports for ENOSPC.
  const bare = { ...env, PYRO_DISK_FLOOR_MIB: "0", PYRO_DISK_OVERCOMMIT: "1" };
  // What the failed calls above left is reaped now, not by the next call's own reaper (it
  // would free space under the create that must meet a full disk).
  await runCli(["vm", "reap"], { env });
  await fill(); // what the failed calls above freed again
  assertNamesFullDisk(
    "create without a floor",
    await runCliJson(["workspace", "create", "--disk-mib", "64"], { env: bare }),
  );
  await fill(); // what the failed create wrote and removed again
  assertNamesFullDisk("run without a floor", await runCliJsonGuest(["run", "--", "true"], { env: bare }));

  // The write reaches the image although the host is full (its blocks were reserved): after a
  // sync and with the page cache dropped, it reads back, and the disk is still writable.
  await sh("sync", []);
  await sh("sh", ["-c", "echo 1 > /proc/sys/vm/drop_caches"]);
  // Still all there after seconds mounted: nothing (such as the kernel's lazy inode-table
  // init through the loop device) punched holes in the reservation meanwhile.
  const later = await stat(join(host, "state", "workspaces", id, "disk.img"));
  assert.ok(later.blocks * 512 >= 160 * 2 ** 20, `disk.img kept ${later.blocks * 512} bytes of blocks`);
  await unfill();
  const back = await exec(id, "sync && sha256sum /workspace/data && touch /workspace/after");
  assert.equal(back.json.exit_code, 0, JSON.stringify(back.json));
  assert.equal(back.json.stdout.split(" ")[0], sum, "the data written before the host filled is intact");
  assert.equal((await statusOf(id)).state, "running");
  assert.equal((await runCli(["workspace", "delete", id], { env })).code, 0);
});

test("overcommitted disks: a disk gone read-only is failed with the reason; start after freeing space repairs it", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  const oc = { ...env, PYRO_DISK_OVERCOMMIT: "1" };
  const ws = await runCliJson<Json & { workspace_id: string }>(["workspace", "create", "--disk-mib", "300"], {
    env: oc,
  });
  assert.equal(ws.code, 0, JSON.stringify(ws.json));
  const id = ws.json.workspace_id;
  const files = join(host, "state", "workspaces", id, "files");
  const img = await stat(join(host, "state", "workspaces", id, "disk.img"));
  assert.ok(img.blocks * 512 < 100 * 2 ** 20, "sparse with the operator's opt-in");

  // Synced before the host fills: this must survive.
  const keep = await exec(
    id,
    "head -c 1M /dev/urandom > /workspace/keep && sync && sha256sum /workspace/keep",
  );
  assert.equal(keep.json.exit_code, 0, JSON.stringify(keep.json));
  const sum = keep.json.stdout.split(" ")[0];
  await fill();
  // A write the sparse image cannot take: the host cannot write it back, ext4 aborts its journal.
  await exec(id, "head -c 60M /dev/zero > /workspace/big; sync");
  const t0 = Date.now();
  let st = await statusOf(id);
  const deadline = Date.now() + 60_000;
  while (st.state !== "failed" && Date.now() < deadline) {
    // The next write the disk sees (as a busy guest's would) meets the aborted journal.
    await sh("touch", [join(files, "probe")]);
    await new Promise((r) => setTimeout(r, 500));
    st = await statusOf(id);
  }
  assert.equal(st.state, "failed", JSON.stringify(st));
  // On the full host, status and list answer at once (no record write retried for its lock).
  const t1 = Date.now();
  await statusOf(id);
  assert.ok(Date.now() - t1 < 10_000, `status on a full host took ${Date.now() - t1} ms`);
  t.diagnostic(`read-only disk seen as failed after ${Date.now() - t0} ms`);
  assert.match(st.reason ?? "", /read-only/);
  assert.match(st.reason ?? "", /free space on the host, then start/);
  const inList = (await listed()).find((w) => w.workspace_id === id);
  assert.equal(inList?.state, "failed", "list says failed too");
  assert.match(String(inList?.reason), /read-only/);

  // Still full: start refuses to repair, naming the full disk.
  const early = await runCliJson<Err>(["workspace", "start", id], { env });
  assert.equal(early.json.error?.code, "disk_full", JSON.stringify(early.json));

  // The way back: free space, then start (unmount, e2fsck -fy, mount, a fresh sandbox).
  await unfill();
  // With room for the record again, the failure is kept, and a command is refused with the
  // same way back (start), not "delete it".
  assert.equal((await statusOf(id)).state, "failed");
  const refused = await runCliJsonGuest<Err>(["workspace", "exec", id, "--", "true"], { env });
  assert.equal(refused.json.error?.code, "sandbox_dead", JSON.stringify(refused.json));
  assert.match(refused.json.error?.hint ?? "", /workspace start/, JSON.stringify(refused.json));
  const start = await runCliJson<Json & { state: string }>(["workspace", "start", id], { env });
  assert.equal(start.code, 0, JSON.stringify(start.json));
  assert.equal(start.json.state, "running");
  const after = await exec(
    id,
    "sha256sum /workspace/keep && echo ok > /workspace/again && cat /workspace/again",
  );
  assert.equal(after.json.exit_code, 0, JSON.stringify(after.json));
  assert.equal(after.json.stdout.split(" ")[0], sum, "synced data from before the failure is intact");
  assert.match(after.json.stdout, /\nok\n/, "the disk takes writes again");
  const ls = await exec(id, "ls -A /workspace");
  assert.deepEqual(
    ls.json.stdout.split("\n").filter(Boolean).sort(),
    ["again", "keep"],
    "the repair leaves no lost+found",
  );
  assert.equal((await statusOf(id)).state, "running");
  assert.equal((await runCli(["workspace", "delete", id], { env })).code, 0);
  const mounts = await readFile("/proc/self/mountinfo", "utf8");
  assert.ok(!mounts.includes(join(host, "state")), "no workspace disk left mounted");
});
