import { stat } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../../core/errors.js";
import { ignore } from "../../util/best-effort.js";
import { readJson, writeJsonAtomic } from "../../util/json-store.js";
import { runscVersion } from "./runsc.js";

/**
 * How a gVisor sandbox with network reaches its network namespace (network/netns.ts; the
 * namespace, veth, nftables policy, DNS forwarder and published ports are the same on both):
 * - `netstack`: `runsc --network=sandbox`. runsc takes the namespace's `eth0` (its address,
 *   routes and MAC) into gVisor's own TCP/IP stack and removes the address from the host's
 *   side, so the guest's socket calls end in the sentry; only raw Ethernet frames leave it,
 *   through an AF_PACKET socket on the veth, where the host's nftables rules judge them.
 * - `host-stack`: `runsc --network=host` started inside the namespace (`nsenter --net`): the
 *   guest's socket calls become the host kernel's socket calls in that namespace. Only for a
 *   runsc that refuses `--network=sandbox` here.
 */
export type NetRoute = "netstack" | "host-stack";
export const NET_ROUTES: readonly NetRoute[] = ["netstack", "host-stack"];

/**
 * The first runsc release whose root-namespace check works on current kernels:
 * release-20240807.0 (commit 19f6b0c07) reads /proc/sys/net/core/dev_weight, which only the
 * root namespace has. Older ones read rmem_default, which kernel 6.18 shows in every
 * namespace, and refuse `--network=sandbox` ("cannot run with network enabled in root
 * network namespace").
 *
 * TODO(#29, lead): a pure version→features function of gv-setup's replaces this parser and
 * the date; netRouteFor is the one place that asks.
 */
export const NETSTACK_SINCE = 20240807;

/**
 * The release date in a `runsc --version` line: `release-20240807.0` (gVisor's releases),
 * `0.0~20240729.0` (Debian), `go-20260905035102-160fafc42237` (built from the `go` branch's
 * Go module, a pseudo-version's commit time).
 */
export function runscReleaseDate(version: string | undefined): number | undefined {
  const m = /(?:release-|0\.0~|go-|v0\.0\.0-)(\d{8})/.exec(version ?? "");
  return m ? Number(m[1]) : undefined;
}

/**
 * The route for a runsc of this version, or PYRO_GVISOR_NET_ROUTE's. A version pyro cannot
 * date (a dev build) takes the host-stack route, which every runsc supports.
 */
export function netRouteFor(version: string | undefined, env: NodeJS.ProcessEnv = process.env): NetRoute {
  const forced = forcedRoute(env);
  if (forced) return forced;
  const date = runscReleaseDate(version);
  return date !== undefined && date >= NETSTACK_SINCE ? "netstack" : "host-stack";
}

function forcedRoute(env: NodeJS.ProcessEnv): NetRoute | undefined {
  const v = env.PYRO_GVISOR_NET_ROUTE;
  if (v === undefined || v === "") return undefined;
  if ((NET_ROUTES as readonly string[]).includes(v)) return v as NetRoute;
  throw new PyroError(
    "invalid_argument",
    `PYRO_GVISOR_NET_ROUTE=${JSON.stringify(v)} is not a network route`,
    `set it to ${NET_ROUTES.join(" or ")}, or unset it to choose by the runsc version`,
  );
}

interface VersionCache {
  /** path:size:mtime of the binary the version was read from. */
  id: string;
  version: string;
}

/**
 * The route for `binary`. Its version is asked once per binary (`runsc --version`, ~40 ms on
 * a loaded host: each `pyro run --network` is a process of its own) and kept in the state dir
 * under the binary's path, size and mtime, so a replaced runsc is asked again.
 */
export async function runscNetRoute(
  binary: string,
  stateDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<NetRoute> {
  const forced = forcedRoute(env);
  if (forced) return forced;
  return netRouteFor(await cachedVersion(binary, stateDir), env);
}

async function cachedVersion(binary: string, stateDir: string): Promise<string | undefined> {
  const s = await stat(binary).catch(ignore("runsc vanished: its version is asked (and fails) below"));
  const id = s ? `${binary}:${s.size}:${Math.round(s.mtimeMs)}` : undefined;
  const file = join(stateDir, "runsc-version.json");
  const kept = id ? await readJson<VersionCache>(file).catch(ignore("no cached runsc version")) : undefined;
  if (id && kept?.id === id && typeof kept.version === "string") return kept.version;
  const version = await runscVersion(binary);
  if (id && version)
    await writeJsonAtomic(file, { id, version } satisfies VersionCache).catch(
      ignore("keeping the runsc version: the next sandbox asks runsc again"),
    );
  return version;
}
