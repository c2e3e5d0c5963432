import { isIP } from "node:net";
import { PyroError } from "../core/errors.js";

/**
 * DNS-rebinding and cross-site protection for `pyro mcp serve --http`, as the MCP Streamable
 * HTTP transport asks of servers: a web page the user visits must not be able to drive the
 * server through the user's browser.
 *
 * - `Origin`: browsers send it on cross-site requests (and on every POST); programs (MCP
 *   clients, the SDK, curl) do not. A request with an Origin is refused unless the operator
 *   allowed that exact origin (`--allow-origin https://app.example.com`); none is by default.
 *   A missing Origin passes: a program is not a page.
 * - `Host`, on a loopback bind: a rebinding attack points the attacker's name at 127.0.0.1,
 *   so the browser sends `Host: evil.example:PORT`. A loopback server answers only to
 *   loopback names (`localhost`, `127.x.x.x`, `[::1]`, any port: an SSH tunnel may use
 *   another) and to names the operator adds (`--allow-host-header`, for a reverse proxy that
 *   forwards the public Host). A server bound beyond loopback is reached by whatever name
 *   the network gives it, so only Origin is checked there.
 *
 * Both happen before authentication and before any body is read.
 */
export interface OriginGuard {
  /** Why the request is refused (the 403's message), or undefined when it may go on. */
  refuse(headers: { origin?: string | undefined; host?: string | undefined }): string | undefined;
}

/** A `--allow-origin` value as the Origin header spells it (scheme://host[:port]), or a clear error. */
export function parseAllowedOrigin(value: string): string {
  const u = URL.canParse(value) ? new URL(value) : undefined;
  if (
    !u ||
    (u.protocol !== "http:" && u.protocol !== "https:") ||
    u.username ||
    u.password ||
    (u.pathname !== "/" && u.pathname !== "") ||
    u.search ||
    u.hash
  )
    throw new PyroError(
      "invalid_argument",
      `--allow-origin ${JSON.stringify(value.slice(0, 200))} is not an origin (http(s)://HOST[:PORT])`,
      "e.g. --allow-origin https://app.example.com or --allow-origin http://localhost:6274 (no path, no wildcard)",
    );
  return u.origin;
}

/** A `--allow-host-header` value: a host name or address, without scheme or port. */
export function parseAllowedHost(value: string): string {
  const h = value.trim().toLowerCase();
  const bracketed = isIP(h) === 6 ? `[${h}]` : h;
  const u = URL.canParse(`http://${bracketed}`) ? new URL(`http://${bracketed}`) : undefined;
  // The URL parser keeps a plain name as it is; a port, a path or credentials change it.
  if (!h || u?.hostname !== bracketed)
    throw new PyroError(
      "invalid_argument",
      `--allow-host-header ${JSON.stringify(value.slice(0, 200))} is not a host name`,
      "give the name clients (or your reverse proxy) send in Host, without scheme or port: e.g. --allow-host-header pyro.example.com",
    );
  return u.hostname;
}

export function isLoopbackBind(host: string): boolean {
  return host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127."));
}

function isLoopbackName(hostname: string): boolean {
  return (
    hostname === "localhost" || hostname === "[::1]" || (isIP(hostname) === 4 && hostname.startsWith("127."))
  );
}

export function originGuard(opts: {
  bindHost: string;
  allowOrigins?: readonly string[];
  allowHosts?: readonly string[];
}): OriginGuard {
  const origins = new Set((opts.allowOrigins ?? []).map(parseAllowedOrigin));
  const hosts = new Set((opts.allowHosts ?? []).map(parseAllowedHost));
  const checkHost = isLoopbackBind(opts.bindHost);
  return {
    refuse({ origin, host }) {
      if (origin !== undefined && origin !== "") {
        const o = URL.canParse(origin) ? new URL(origin).origin : "null";
        // On a loopback bind, a loopback Origin naming this very server (the Host it was
        // reached by) is same-origin: not a page of another site. Rebinding cannot forge it,
        // as the Host check below refuses every non-loopback name.
        const sameLoopback =
          checkHost && host !== undefined && URL.canParse(o) && new URL(o).host === host.toLowerCase();
        if (!origins.has(o) && !(sameLoopback && isLoopbackName(new URL(o).hostname)))
          return `Origin ${JSON.stringify(origin.slice(0, 200))} is not allowed (the operator allows origins with --allow-origin)`;
      }
      if (checkHost) {
        const name = host && URL.canParse(`http://${host}`) ? new URL(`http://${host}`).hostname : undefined;
        if (!name || (!isLoopbackName(name) && !hosts.has(name)))
          return `Host ${JSON.stringify((host ?? "").slice(0, 200))} is not a loopback name, and this server listens on loopback (the operator adds names with --allow-host-header)`;
      }
      return undefined;
    },
  };
}
