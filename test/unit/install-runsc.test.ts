import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";

/**
 * scripts/install-runsc.sh (setup-host.sh's runsc step) with a fake Go toolchain, apt-get and
 * sudo on PATH, so it runs in a second and touches no network: the pinned build is stamped,
 * verified, cached per version and installed; a second set-up does not build; a build whose
 * runsc names another version is refused. The real build (minutes) was measured by hand
 * (docs/host-requirements.md).
 */
const REPO = join(import.meta.dirname, "..", "..");
const SCRIPT = join(REPO, "scripts", "install-runsc.sh");
const PIN = /^require gvisor\.dev\/gvisor v0\.0\.0-(\d{14})-([0-9a-f]{12})$/m.exec(
  await readFile(join(REPO, "scripts", "gvisor-build", "go.mod"), "utf8"),
);
const STAMP = `go-${PIN?.[1]}-${PIN?.[2]}`;

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function exe(path: string, text: string): Promise<void> {
  await writeFile(path, text);
  await chmod(path, 0o755);
}

/** A fake runsc printing this version, as `runsc --version` does. */
const fakeRunsc = (version: string) => `#!/bin/sh\nprintf 'runsc version ${version}\\nspec: 1.2.0\\n'\n`;

/**
 * A host: bin/ (the install destination), a build cache, and tools/ with a `go` that logs
 * each call and "builds" a script printing the -X stamp it was given (FAKE_GO_STAMP
 * overrides it: a build that says another version), an apt-get that fails (no download may
 * happen), and a sudo that just runs the command.
 */
async function host(opts: { oldRunsc?: boolean } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "pyro-install-runsc-"));
  dirs.push(dir);
  const tools = join(dir, "tools");
  const bin = join(dir, "bin");
  await mkdir(tools);
  await mkdir(bin);
  await exe(
    join(tools, "go"),
    `#!/bin/bash
echo "$*" >>"${dir}/go-calls"
if [ "$1" = env ]; then echo go1.26.8; exit 0; fi
[ "$1" = build ] || exit 3
out=""; stamp=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    -ldflags) stamp="\${2##*=}"; shift 2 ;;
    *) pkg="$1"; shift ;;
  esac
done
stamp="\${FAKE_GO_STAMP:-$stamp}"
case "$pkg" in
  gvisor.dev/gvisor/runsc) printf '#!/bin/sh\\nprintf "runsc version %s\\\\nspec: 1.2.1\\\\n"\\n' "$stamp" >"$out" ;;
  gvisor.dev/gvisor/shim) printf '#!/bin/sh\\nprintf "containerd-shim-runsc-v1:\\\\n  Version:  2.1.5\\\\n  Revision: %s\\\\n"\\n' "$stamp" >"$out" ;;
  *) exit 4 ;;
esac
chmod 755 "$out"
`,
  );
  await exe(join(tools, "apt-get"), `#!/bin/sh\necho "apt-get called: $*" >&2\nexit 9\n`);
  await exe(join(tools, "sudo"), `#!/bin/sh\nexec "$@"\n`);
  if (opts.oldRunsc !== false) await exe(join(bin, "runsc-20240729"), fakeRunsc("0.0~20240729.0"));
  const env = {
    PATH: `${tools}:/usr/bin:/bin`,
    PYRO_RUNSC_DEST: join(bin, "runsc"),
    PYRO_GVISOR_CACHE: join(dir, "cache"),
    PYRO_GO: join(tools, "go"),
  };
  const run = (extra: Record<string, string> = {}) =>
    spawnSync("bash", [SCRIPT], { env: { ...env, ...extra }, encoding: "utf8" });
  const builds = async () =>
    (await readFile(join(dir, "go-calls"), "utf8").catch(() => ""))
      .split("\n")
      .filter((l) => l.startsWith("build ")).length;
  const version = (p: string) => spawnSync(p, ["--version"], { encoding: "utf8" }).stdout.split("\n")[0];
  return { dir, bin, cache: join(dir, "cache", STAMP), run, builds, version };
}

test("the pinned gVisor is built once, verified, kept per version and installed; a second set-up does not build", async () => {
  assert.ok(PIN, "scripts/gvisor-build/go.mod pins a gvisor.dev/gvisor pseudo-version");
  const h = await host();
  const first = h.run();
  assert.equal(first.status, 0, first.stderr);
  assert.equal(await h.builds(), 1, "runsc was built (the shim is the test cluster's to build)");
  assert.equal(h.version(join(h.bin, "runsc")), `runsc version ${STAMP}`);
  const kept = await readFile(join(h.cache, "VERSION"), "utf8");
  assert.match(
    kept,
    new RegExp(`^gvisor.dev/gvisor v0\\.0\\.0-${PIN![1]}-${PIN![2]}\\nstamp ${STAMP}\\ngo.sum h1:`),
  );
  // The old runsc beside it is left as it was (no download: apt-get would fail).
  assert.equal(h.version(join(h.bin, "runsc-20240729")), "runsc version 0.0~20240729.0");

  const before = (await stat(join(h.bin, "runsc"))).mtimeMs;
  const second = h.run();
  assert.equal(second.status, 0, second.stderr);
  assert.equal(await h.builds(), 1, "no build the second time");
  assert.match(second.stderr, /already built in .*\n.*runsc already installed/);
  assert.equal((await stat(join(h.bin, "runsc"))).mtimeMs, before, "nothing was reinstalled");

  // Binaries removed (or replaced by Debian's): put back from the cache, still without building.
  await exe(join(h.bin, "runsc"), fakeRunsc("0.0~20240729.0"));
  const third = h.run();
  assert.equal(third.status, 0, third.stderr);
  assert.equal(await h.builds(), 1);
  assert.equal(h.version(join(h.bin, "runsc")), `runsc version ${STAMP}`);
  assert.match(third.stderr, /\(was: runsc version 0\.0~20240729\.0\)/);
});

test("a build whose runsc names another version is not installed, and not kept", async () => {
  const h = await host();
  const r = h.run({ FAKE_GO_STAMP: "go-20200101000000-000000000000" });
  assert.notEqual(r.status, 0);
  assert.match(
    r.stderr,
    /the built runsc says 'runsc version go-20200101000000-000000000000', not 'runsc version go-/,
  );
  await assert.rejects(stat(join(h.bin, "runsc")), "nothing installed");
  await assert.rejects(stat(join(h.cache, "VERSION")), "nothing kept");
});

test("without Go, Debian's runsc is used; a host set up before keeps its Debian runsc as runsc-20240729", async () => {
  const h = await host({ oldRunsc: false });
  // The old set-up's result: Debian's runsc at the destination, nothing beside it.
  await exe(join(h.bin, "runsc"), fakeRunsc("0.0~20240729.0"));
  const debian = h.run({ PYRO_RUNSC_SOURCE: "debian" });
  assert.equal(debian.status, 0, debian.stderr);
  assert.equal(await h.builds(), 0);
  assert.equal(h.version(join(h.bin, "runsc-20240729")), "runsc version 0.0~20240729.0");
  assert.equal(h.version(join(h.bin, "runsc")), "runsc version 0.0~20240729.0");
  assert.match(debian.stderr, /runsc already installed: runsc version 0\.0~20240729\.0 at /);
  // Then with Go: the new build takes the destination, the old one stays beside it.
  const go = h.run();
  assert.equal(go.status, 0, go.stderr);
  assert.equal(h.version(join(h.bin, "runsc")), `runsc version ${STAMP}`);
  assert.equal(h.version(join(h.bin, "runsc-20240729")), "runsc version 0.0~20240729.0");
});
