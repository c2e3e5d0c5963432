/**
 * Which runsc pyro is driving, and what that build can do: parsed from `runsc --version`
 * alone (pure; runsc.ts runs the binary). Three spellings are seen:
 *   - Debian's package: `runsc version 0.0~20240729.0`
 *   - gVisor's releases (its apt repository, its release binaries): `runsc version release-20260817.0`
 *   - pyro's set-up, built from gVisor's Go module (scripts/install-runsc.sh):
 *     `runsc version go-20260905035102-160fafc42237`, the pinned pseudo-version's commit time
 *     and commit on gVisor's `go` branch, which upstream does not tag with release names.
 * A build that says nothing of its date (a go build without the stamp prints
 * `VERSION_MISSING`) is assumed to have none of the features below: every use of a feature
 * has a route for runsc builds without it.
 *
 * Dates compare across the spellings: a release is cut from gVisor's master on its date, and
 * the `go` branch is master, regenerated on every commit, so a `go` commit from a later day
 * holds every fix of an earlier release.
 */

export type RunscBuild = "debian" | "release" | "go" | "unknown";

export interface RunscVersion {
  /** The first line of `runsc --version`, as printed ("unknown" when it printed nothing). */
  text: string;
  build: RunscBuild;
  /** YYYYMMDD of the release or commit, as a number; null when the version does not say. */
  date: number | null;
  /** The gVisor commit (12 hex digits) of a `go` build; null otherwise. */
  commit: string | null;
}

/** The oldest runsc pyro runs on: Debian bookworm's 2022 build fails statx on directories. */
export const MIN_RUNSC_DATE = 20240729;

/**
 * What a newer runsc brings that pyro can use, with the first release that has it. Other
 * parts of pyro ask `runscSupports` (runsc.ts) rather than comparing versions themselves.
 */
export const RUNSC_FEATURES = {
  netstack: {
    since: 20240807,
    detail:
      "gVisor's own network stack (--network=sandbox) inside pyro's per-sandbox namespace: runsc before release-20240807.0 mistakes every namespace for the root one on kernels that show net.core.rmem_default in each (gVisor commit 19f6b0c07)",
  },
  systrap_idle: {
    since: 20260622,
    detail:
      "idle sandboxes park under the systrap platform instead of polling (release-20260622.0, gVisor commit 32f98f20c)",
  },
  gofer_netns: {
    since: 20260727,
    detail:
      "--gofer-network-namespace (gVisor PR 13780, July 2026): pyro asks for a namespace per gofer, since from August 2026 runsc otherwise pins one shared namespace as a bind mount in its --root that outlives every sandbox (PR 13950)",
  },
} as const satisfies Record<string, { since: number; detail: string }>;

export type RunscFeature = keyof typeof RUNSC_FEATURES;

export const RUNSC_FEATURE_NAMES = Object.keys(RUNSC_FEATURES) as RunscFeature[];

/** `runsc --version`'s output (all of it, or its first line) as a RunscVersion. */
export function parseRunscVersion(output: string): RunscVersion {
  const line =
    output
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l) ?? "";
  const text = line || "unknown";
  const v = line.replace(/^runsc version\s+/, "");
  let m = /^release-(\d{8})\b/.exec(v);
  if (m) return { text, build: "release", date: Number(m[1]), commit: null };
  m = /^0\.0~(\d{8})\b/.exec(v);
  if (m) return { text, build: "debian", date: Number(m[1]), commit: null };
  // go-YYYYMMDDhhmmss-<12 hex>: the Go module pseudo-version's time and commit.
  m = /^go-(\d{8})\d{6}-([0-9a-f]{12})\b/.exec(v);
  if (m) return { text, build: "go", date: Number(m[1]), commit: m[2]! };
  return { text, build: "unknown", date: null, commit: null };
}

/** Whether this version is old enough to be refused (unknown dates are given the benefit). */
export function runscTooOld(v: RunscVersion): boolean {
  return v.date !== null && v.date < MIN_RUNSC_DATE;
}

/** Whether a runsc of this version has the feature; an unknown date has none. */
export function versionSupports(v: RunscVersion, feature: RunscFeature): boolean {
  return v.date !== null && v.date >= RUNSC_FEATURES[feature].since;
}

export interface FeatureReport {
  name: RunscFeature;
  enabled: boolean;
  /** What it is and which release brought it; for a missing one, what this build lacks. */
  detail: string;
}

/** Every feature, on or off for this version: what `pyro doctor` lists. */
export function runscFeatures(v: RunscVersion): FeatureReport[] {
  return RUNSC_FEATURE_NAMES.map((name) => {
    const enabled = versionSupports(v, name);
    const { detail } = RUNSC_FEATURES[name];
    return {
      name,
      enabled,
      detail: enabled
        ? detail
        : v.date === null
          ? `unknown for ${v.text} (no release date in its version), so assumed absent: ${detail}`
          : `not in ${v.text}: ${detail}`,
    };
  });
}
