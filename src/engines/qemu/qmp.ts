import { connect, type Socket } from "node:net";
import { ignore } from "../../util/best-effort.js";

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    desc: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
  }
}

/**
 * A thin QMP client over node:net: the protocol is a greeting line, then `qmp_capabilities`,
 * then `{"execute", "id"}` → `{"return"|"error", "id"}` plus asynchronous `{"event"}` lines.
 * Requests carry ids, so replies are matched even with events interleaved.
 */
export class QmpClient {
  private buf = "";
  private nextId = 1;
  private readonly pending = new Map<
    string,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; command: string }
  >();
  readonly events: QmpEvent[] = [];
  private eventWaiters: { name: string; resolve: (e: QmpEvent) => void }[] = [];
  private closed: Error | undefined;
  private greeted!: Promise<void>;

  private constructor(private readonly sock: Socket) {}

  static async connect(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once("connect", () => {
            s.removeAllListeners("error");
            resolve(s);
          });
          s.once("error", reject);
        });
        const c = new QmpClient(sock);
        c.attach();
        await withTimeout(c.greeted, Math.max(100, deadline - Date.now()), "QMP greeting");
        await c.execute("qmp_capabilities");
        return c;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 30));
      }
    }
  }

  private attach(): void {
    let greet!: () => void;
    let greetFail!: (e: Error) => void;
    this.greeted = new Promise((resolve, reject) => {
      greet = resolve;
      greetFail = reject;
    });
    this.greeted.catch(
      ignore("a failed greeting is awaited by connect; this only keeps it from being unhandled"),
    );
    let sawGreeting = false;
    this.sock.setEncoding("utf8");
    this.sock.on("data", (chunk: string) => {
      this.buf += chunk;
      let nl = this.buf.indexOf("\n");
      while (nl >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        nl = this.buf.indexOf("\n");
        if (!line) continue;
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (!sawGreeting && "QMP" in msg) {
          sawGreeting = true;
          greet();
        } else if ("event" in msg) {
          const ev = msg as unknown as QmpEvent;
          this.events.push(ev);
          for (const w of this.eventWaiters.filter((x) => x.name === ev.event)) w.resolve(ev);
          this.eventWaiters = this.eventWaiters.filter((x) => x.name !== ev.event);
        } else if ("id" in msg) {
          const p = this.pending.get(String(msg.id));
          if (!p) continue;
          this.pending.delete(String(msg.id));
          if ("error" in msg) {
            const err = msg.error as { class?: string; desc?: string };
            p.reject(new QmpError(p.command, err.class ?? "Error", err.desc ?? "unknown error"));
          } else {
            p.resolve(msg.return);
          }
        }
      }
    });
    const onClose = (e?: Error) => {
      if (this.closed) return;
      this.closed = e ?? new Error("QMP connection closed");
      greetFail(this.closed);
      for (const p of this.pending.values()) p.reject(this.closed);
      this.pending.clear();
    };
    this.sock.on("error", (e) => onClose(e));
    this.sock.on("close", () => onClose());
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
    if (this.closed) return Promise.reject(this.closed);
    const id = String(this.nextId++);
    const p = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, command });
    });
    this.sock.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    return withTimeout(p, timeoutMs, `QMP ${command}`);
  }

  /** Resolves with the first `name` event seen since connecting (or arriving later). */
  waitEvent(name: string, timeoutMs: number): Promise<QmpEvent> {
    const seen = this.events.find((e) => e.event === name);
    if (seen) return Promise.resolve(seen);
    return withTimeout(
      new Promise<QmpEvent>((resolve) => this.eventWaiters.push({ name, resolve })),
      timeoutMs,
      `QMP event ${name}`,
    );
  }

  get isClosed(): boolean {
    return this.closed !== undefined;
  }

  close(): void {
    this.sock.destroy();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e as Error);
      },
    );
  });
}
