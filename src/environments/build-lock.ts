import { PyroError } from "../core/errors.js";
import { withLock } from "../util/json-store.js";

/**
 * The lock around building one cache entry. withLock gives up after ~20 s, but a build or
 * pull in another process may take minutes; waiting is right (the other process is doing
 * our work), so this keeps waiting until the lock is free or the caller cancels. `fn`
 * re-checks whether the entry appeared meanwhile.
 */
export async function withBuildLock<T>(path: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (;;) {
    try {
      return await withLock(path, fn);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ELOCKED") throw e;
      if (signal?.aborted)
        throw new PyroError(
          "cancelled",
          "cancelled while waiting for another pyro process to finish the same build",
        );
    }
  }
}
