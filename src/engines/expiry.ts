import { promises as fsp, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * A sandbox's expiry as its watchdog reads it: `<ctlDir>/expires_at`, a Unix time in seconds
 * (0: none), replaced atomically. gVisor's sandbox init reads it from inside the sandbox; for
 * microVMs a host-side `pyro-sandbox-init watch` process does, so a TTL holds with no pyro
 * process alive.
 */
export const EXPIRES_FILE = "expires_at";

const tmpPath = (ctlDir: string) => join(ctlDir, `.${EXPIRES_FILE}.${process.pid}`);
const text = (expiresAt: string | undefined) =>
  `${expiresAt ? Math.ceil(Date.parse(expiresAt) / 1000) : 0}\n`;

export async function writeExpiry(ctlDir: string, expiresAt: string | undefined): Promise<void> {
  await fsp.writeFile(tmpPath(ctlDir), text(expiresAt), { mode: 0o644 });
  await fsp.rename(tmpPath(ctlDir), join(ctlDir, EXPIRES_FILE));
}

/**
 * The same, synchronously: for the warm pool's claim and release, a run's hot path, where two
 * thread-pool round trips cost more than the two tiny writes themselves.
 */
export function writeExpirySync(ctlDir: string, expiresAt: string | undefined): void {
  writeFileSync(tmpPath(ctlDir), text(expiresAt), { mode: 0o644 });
  renameSync(tmpPath(ctlDir), join(ctlDir, EXPIRES_FILE));
}
