import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DEFAULT_RUNSC_PLATFORM,
  globalFlags,
  platformReport,
  runscPlatform,
} from "../../src/engines/gvisor/runsc.js";

test("every sandbox gets pyro's measured platform unless PYRO_RUNSC_PLATFORM names one", () => {
  assert.ok(globalFlags("/s/runsc", false, {}, false).includes(`--platform=${DEFAULT_RUNSC_PLATFORM}`));
  const forced = globalFlags("/s/runsc", false, { PYRO_RUNSC_PLATFORM: "ptrace" }, false);
  assert.deepEqual(
    forced.filter((f) => f.startsWith("--platform")),
    ["--platform=ptrace"],
    "the override replaces the default, never both",
  );
  assert.deepEqual(runscPlatform({}), { platform: DEFAULT_RUNSC_PLATFORM, source: "default" });
  assert.deepEqual(runscPlatform({ PYRO_RUNSC_PLATFORM: " " }), {
    platform: DEFAULT_RUNSC_PLATFORM,
    source: "default",
  });
});

test("doctor's platform report says who chose the platform", () => {
  const def = platformReport({});
  assert.equal(def.source, "default");
  assert.match(def.detail, new RegExp(`^${DEFAULT_RUNSC_PLATFORM} \\(pyro's default`));
  assert.match(def.detail, /PYRO_RUNSC_PLATFORM/);
  const set = platformReport({ PYRO_RUNSC_PLATFORM: "kvm" });
  assert.deepEqual([set.platform, set.source], ["kvm", "PYRO_RUNSC_PLATFORM"]);
  assert.match(set.detail, new RegExp(`pyro's default is ${DEFAULT_RUNSC_PLATFORM}`));
});
