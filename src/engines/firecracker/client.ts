import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { type ApiRequest, parseVsockReply, vsockConnectLine } from "./api.js";

export class FirecrackerApiError extends Error {
  constructor(
    readonly req: ApiRequest,
    readonly status: number,
    readonly fault: string,
  ) {
    super(`Firecracker ${req.method} ${req.path} failed (${status}): ${fault}`);
  }
}

/** Sends one API request over the unix socket; resolves with the parsed JSON body (if any). */
export function send(socketPath: string, req: ApiRequest, timeoutMs = 10_000): Promise<unknown> {
  const body = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  return new Promise((resolve, reject) => {
    const r = request(
      {
        socketPath,
        method: req.method,
        path: req.path,
        headers: {
          Accept: "application/json",
          ...(body ? { "Content-Type": "application/json", "Content-Length": String(body.length) } : {}),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(json);
          else
            reject(
              new FirecrackerApiError(
                req,
                status,
                (json as { fault_message?: string } | undefined)?.fault_message ?? text,
              ),
            );
        });
      },
    );
    r.on("timeout", () => r.destroy(new Error(`Firecracker ${req.method} ${req.path} timed out`)));
    r.on("error", reject);
    r.end(body);
  });
}

export async function sendAll(socketPath: string, reqs: readonly ApiRequest[]): Promise<void> {
  for (const r of reqs) await send(socketPath, r);
}

/** Waits until the API socket accepts connections (Firecracker creates it at start-up). */
export async function waitApi(socketPath: string, deadlineMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      await send(socketPath, { method: "GET", path: "/" }, 1000);
      return;
    } catch (e) {
      if (!alive()) throw new Error("firecracker exited during start-up");
      if (Date.now() > deadline) throw new Error(`Firecracker API socket not ready: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** A host-initiated vsock connection to the guest's `port`, through Firecracker's unix socket. */
export function connectVsock(udsPath: string, port: number, timeoutMs = 5000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(udsPath);
    let line = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error("vsock CONNECT timed out"));
    }, timeoutMs);
    const fail = (e: Error) => {
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    s.once("error", fail);
    s.once("connect", () => s.write(vsockConnectLine(port)));
    const onData = (chunk: Buffer) => {
      line += chunk.toString("latin1");
      const nl = line.indexOf("\n");
      if (nl < 0) return;
      s.off("data", onData);
      clearTimeout(timer);
      const reply = parseVsockReply(line.slice(0, nl + 1));
      if (!reply.ok) {
        fail(new Error(`vsock CONNECT ${port} refused: ${reply.reason}`));
        return;
      }
      s.removeAllListeners("error");
      // Bytes after the reply line already belong to the agent: hand them back, paused, to
      // whoever reads next (AgentSession resumes the stream).
      s.pause();
      const rest = Buffer.from(line.slice(nl + 1), "latin1");
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    s.on("data", onData);
  });
}
