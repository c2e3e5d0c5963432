import { PyroError } from "../../core/errors.js";
import { parseRunscVersion, versionSupports } from "./features.js";
import { readRunscVersion } from "./runsc.js";

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
 * The route for a runsc of this version, or PYRO_GVISOR_NET_ROUTE's. A version pyro cannot
 * date (a dev build) takes the host-stack route, which every runsc supports.
 */
export function netRouteFor(version: string | undefined, env: NodeJS.ProcessEnv = process.env): NetRoute {
  const forced = forcedRoute(env);
  if (forced) return forced;
  return versionSupports(parseRunscVersion(version ?? ""), "netstack") ? "netstack" : "host-stack";
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

/**
 * The route for `binary`. Its version is asked once per binary (`runsc --version`, ~40 ms on
 * a loaded host: each `pyro run --network` is a process of its own) and kept in the cache
 * dir under the binary's identity (readRunscVersion), so a replaced runsc is asked again.
 */
export async function runscNetRoute(
  binary: string,
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<NetRoute> {
  const forced = forcedRoute(env);
  if (forced) return forced;
  const v = await readRunscVersion(binary, cacheDir);
  return versionSupports(v, "netstack") ? "netstack" : "host-stack";
}
