import { promises as fsp, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * A sandbox's expiry as its watchdog reads it: `<ctlDir>/expires_at`, a Unix time in seconds,
 * replaced atomically. gVisor's sandbox init reads it from inside the sandbox; for microVMs a
 * host-side `pyro-sandbox-init watch` process does, so a TTL holds with no pyro process alive.
 */
export const EXPIRES_FILE = "expires_at";

export async function writeExpiry(ctlDir: string, expiresAt: string): Promise<void> {
  const tmp = join(ctlDir, `.${EXPIRES_FILE}.${process.pid}`);
  await fsp.writeFile(tmp, `${Math.ceil(Date.parse(expiresAt) / 1000)}\n`, { mode: 0o644 });
  await fsp.rename(tmp, join(ctlDir, EXPIRES_FILE));
}

/**
 * The same, synchronously: for the warm pool's claim and release, a run's hot path, where two
 * thread-pool round trips cost more than the two tiny writes themselves.
 */
export function writeExpirySync(ctlDir: string, expiresAt: string): void {
  const tmp = join(ctlDir, `.${EXPIRES_FILE}.${process.pid}`);
  writeFileSync(tmp, `${Math.ceil(Date.parse(expiresAt) / 1000)}\n`, { mode: 0o644 });
  renameSync(tmp, join(ctlDir, EXPIRES_FILE));
}
