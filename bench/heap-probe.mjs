/**
 * Preloaded into the server by `npm run bench:soak` (node --expose-gc --import this file),
 * never by pyro itself: on SIGUSR2 it runs a full GC and appends one JSON line of
 * process.memoryUsage() to $PYRO_BENCH_HEAP_PROBE, so the soak can tell the live heap (what
 * a leak grows) from the RSS V8 and malloc keep after a peak (a cache of free pages).
 */
import { appendFileSync } from "node:fs";

const out = process.env.PYRO_BENCH_HEAP_PROBE;
if (out && typeof globalThis.gc === "function") {
  const gc = globalThis.gc;
  process.on("SIGUSR2", () => {
    gc();
    gc();
    const m = process.memoryUsage();
    appendFileSync(out, `${JSON.stringify({ at: Date.now(), ...m })}\n`);
  });
}
