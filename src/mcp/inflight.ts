/**
 * The tool calls a server is running, so that `notifications/cancelled` reaches the call it
 * names whichever McpServer instance receives it. Over stdio one instance serves the whole
 * connection and the SDK finds the call itself; over Streamable HTTP every POST gets a fresh
 * instance (src/remote/http.ts), so the cancel arrives at an instance that never saw the
 * call, the SDK's own lookup finds nothing, and the sandbox used to run to its end. Every
 * tools/call registers here (server.ts `callOperation`), and every instance's cancel handler
 * looks here: one path for both transports.
 *
 * Request ids are unique per client only, so a call is registered under a scope: the
 * connection on stdio, the tenant and the client's `Mcp-Session-Id` over HTTP (the server
 * hands one out on `initialize` for exactly this). A cancel in a scope without a session
 * (a client that sends none) ends a call only when exactly one call of that scope has the
 * id: two clients of one token may both have a request 3 running, and neither's cancel may
 * end the other's.
 */
export type RequestId = string | number;

interface Entry {
  scope: string;
  id: RequestId;
  controller: AbortController;
}

export class InflightCalls {
  private readonly calls = new Set<Entry>();

  /**
   * Registers a running call; returns its signal (aborted by a cancel, or when `parent`
   * aborts: the SDK's own signal, which a disconnect aborts) and the function that
   * unregisters it once the call has ended.
   */
  register(scope: string, id: RequestId, parent?: AbortSignal): { signal: AbortSignal; done: () => void } {
    const controller = new AbortController();
    const entry: Entry = { scope, id, controller };
    this.calls.add(entry);
    const onParent = () => controller.abort(parent?.reason);
    if (parent?.aborted) onParent();
    else parent?.addEventListener("abort", onParent, { once: true });
    return {
      signal: controller.signal,
      done: () => {
        parent?.removeEventListener("abort", onParent);
        this.calls.delete(entry);
      },
    };
  }

  /**
   * Cancels the call `id` of `scope`. An id held by more than one call of the scope (only a
   * scope of several clients can have that) is ambiguous and cancels nothing. Returns how
   * many calls were cancelled (0 or 1).
   */
  cancel(scope: string, id: RequestId, reason?: unknown): number {
    const hits = [...this.calls].filter((c) => c.scope === scope && c.id === id);
    if (hits.length !== 1) return 0;
    const hit = hits[0]!;
    hit.controller.abort(reason ?? new Error("cancelled by the client"));
    this.calls.delete(hit);
    return 1;
  }

  /** How many calls are registered (for tests and the bound's check). */
  get size(): number {
    return this.calls.size;
  }
}
