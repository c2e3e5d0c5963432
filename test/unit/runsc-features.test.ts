import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  MIN_RUNSC_DATE,
  parseRunscVersion,
  RUNSC_FEATURE_NAMES,
  runscFeatures,
  runscTooOld,
  versionSupports,
} from "../../src/engines/gvisor/features.js";
import { readRunscVersion, runscSupports } from "../../src/engines/gvisor/runsc.js";

const REPO = join(import.meta.dirname, "..", "..");
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** The three spellings of `runsc --version` pyro meets, as printed (two lines). */
const DEBIAN = "runsc version 0.0~20240729.0\nspec: 1.2.0\n";
const RELEASE = "runsc version release-20260817.0\nspec: 1.2.0\n";
const GO = "runsc version go-20260905035102-160fafc42237\nspec: 1.2.0\n";

test("runsc --version: Debian's, a release's and pyro's go-module build parse to a build, date and commit", () => {
  assert.deepEqual(parseRunscVersion(DEBIAN), {
    text: "runsc version 0.0~20240729.0",
    build: "debian",
    date: 20240729,
    commit: null,
  });
  assert.deepEqual(parseRunscVersion(RELEASE), {
    text: "runsc version release-20260817.0",
    build: "release",
    date: 20260817,
    commit: null,
  });
  assert.deepEqual(parseRunscVersion(GO), {
    text: "runsc version go-20260905035102-160fafc42237",
    build: "go",
    date: 20260905,
    commit: "160fafc42237",
  });
  // An unstamped go build, a custom string and nothing at all: no date, so no features.
  for (const out of ["runsc version VERSION_MISSING\n", "runsc version mine\n", ""]) {
    const v = parseRunscVersion(out);
    assert.equal(v.build, "unknown", out);
    assert.equal(v.date, null, out);
  }
  assert.equal(parseRunscVersion("").text, "unknown");
});

test("features by version: the Debian build has neither, the release and the go build both", () => {
  const debian = parseRunscVersion(DEBIAN);
  const release = parseRunscVersion(RELEASE);
  const go = parseRunscVersion(GO);
  assert.deepEqual(RUNSC_FEATURE_NAMES, ["netstack", "systrap_idle", "gofer_netns"]);
  for (const f of RUNSC_FEATURE_NAMES) {
    assert.equal(versionSupports(debian, f), false, `debian ${f}`);
    assert.equal(versionSupports(release, f), true, `release ${f}`);
    assert.equal(versionSupports(go, f), true, `go ${f}`);
    assert.equal(versionSupports(parseRunscVersion("runsc version VERSION_MISSING"), f), false);
  }
  // The boundaries: each feature's first release has it, the day before does not.
  assert.equal(versionSupports(parseRunscVersion("runsc version release-20240807.0"), "netstack"), true);
  assert.equal(versionSupports(parseRunscVersion("runsc version release-20240806.0"), "netstack"), false);
  const june = parseRunscVersion("runsc version release-20260622.0");
  assert.equal(versionSupports(june, "systrap_idle"), true);
  assert.equal(versionSupports(parseRunscVersion("runsc version release-20260615.0"), "systrap_idle"), false);
  // What doctor lists: every feature, with why an old build lacks it.
  const listed = runscFeatures(debian);
  assert.deepEqual(
    listed.map((f) => [f.name, f.enabled]),
    [
      ["netstack", false],
      ["systrap_idle", false],
      ["gofer_netns", false],
    ],
  );
  assert.match(listed[0]!.detail, /^not in runsc version 0\.0~20240729\.0: .*release-20240807\.0/);
  assert.match(
    runscFeatures(parseRunscVersion("runsc version mine"))[1]!.detail,
    /^unknown for .*assumed absent/,
  );
  assert.ok(runscFeatures(go).every((f) => f.enabled && !/^not in/.test(f.detail)));
});

test("the oldest accepted runsc is 2024-07-29; older dated builds are refused, undated ones are not", () => {
  assert.equal(MIN_RUNSC_DATE, 20240729);
  assert.equal(runscTooOld(parseRunscVersion("runsc version 0.0~20221219.0")), true);
  assert.equal(runscTooOld(parseRunscVersion(DEBIAN)), false);
  assert.equal(runscTooOld(parseRunscVersion(GO)), false);
  assert.equal(runscTooOld(parseRunscVersion("runsc version VERSION_MISSING")), false);
});

test("runscSupports runs the binary once per file identity, and a later process reads the kept answer", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pyro-runsc-features-"));
  dirs.push(dir);
  const bin = join(dir, "runsc");
  const calls = join(dir, "calls");
  const fake = (version: string) =>
    `#!/bin/sh\necho x >>${calls}\nprintf 'runsc version ${version}\\nspec: 1.2.0\\n'\n`;
  await writeFile(bin, fake("0.0~20240729.0"));
  await chmod(bin, 0o755);
  const cacheDir = join(dir, "cache");
  const count = async () =>
    (await readFile(calls, "utf8").catch(() => "")).split("\n").filter(Boolean).length;
  assert.equal(await runscSupports("netstack", { binary: bin, cacheDir }), false);
  assert.equal(await runscSupports("systrap_idle", { binary: bin, cacheDir }), false);
  assert.equal(await count(), 1, "asked once, then remembered");
  const kept = JSON.parse(await readFile(join(cacheDir, "gvisor", "runsc-version.json"), "utf8"));
  assert.equal(kept.text, "runsc version 0.0~20240729.0");
  // A later process (a CLI call is one) reads the kept answer instead of running runsc.
  const child = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      "-e",
      `import("${join(REPO, "src/engines/gvisor/runsc.ts")}").then(async (m) => console.log((await m.readRunscVersion(${JSON.stringify(bin)}, ${JSON.stringify(cacheDir)})).text))`,
    ],
    { cwd: REPO, encoding: "utf8" },
  );
  assert.equal(child.stdout.trim(), "runsc version 0.0~20240729.0", child.stderr);
  assert.equal(await count(), 1, "the later process did not run runsc");
  // Replaced by the new build (another size and mtime): asked again, and the answer changes.
  await writeFile(bin, fake("go-20260905035102-160fafc42237"));
  assert.equal(await runscSupports("netstack", { binary: bin, cacheDir }), true);
  assert.equal(await count(), 2);
  assert.equal((await readRunscVersion(bin, cacheDir)).commit, "160fafc42237");
  assert.equal(await count(), 2);
  // PYRO_RUNSC names the binary as the engine finds it; no runsc at all means no feature.
  assert.equal(await runscSupports("netstack", { env: { PYRO_RUNSC: bin, PATH: "" } }), true);
  assert.equal(await runscSupports("netstack", { env: { PYRO_RUNSC: join(dir, "missing") } }), false);
});
