import { SECRETS_DIR } from "../contract/defaults.js";
import { PyroError, toPyroError } from "../core/errors.js";
import type { Engine, SandboxHandle } from "../engines/types.js";
import type { SecretValue } from "./redactor.js";

/**
 * Where secret values live: in the sandbox, under /run/pyro-secrets, in memory only.
 * - gVisor: the root overlay is `--overlay2=root:memory`, so a file the guest writes outside
 *   /workspace is held in the sandbox's memory file, never on the host's disk.
 * - QEMU: the guest's root is a qcow2 overlay on the host's disk, so a tmpfs is mounted on
 *   /run/pyro-secrets first (the VM's RAM).
 * The host reads them back (`readSecrets`) when a call needs them for redaction or an
 * environment variable, and keeps them in memory only.
 */

/** The name and size pyro keeps in the workspace record (never the value, nor a hash of it). */
export interface SecretMeta {
  name: string;
  bytes: number;
}

/** A ustar archive of the secrets, files mode 0400 owned by the command user. */
export function secretsTar(secrets: readonly SecretValue[], uid: number, gid: number): Buffer {
  const blocks: Buffer[] = [];
  for (const s of secrets) {
    const h = Buffer.alloc(512);
    const put = (off: number, len: number, text: string) => h.write(text, off, len, "latin1");
    const oct = (off: number, len: number, n: number) =>
      put(off, len, `${n.toString(8).padStart(len - 1, "0")}\0`);
    put(0, 100, s.name);
    oct(100, 8, 0o400);
    oct(108, 8, uid);
    oct(116, 8, gid);
    oct(124, 12, s.value.length);
    oct(136, 12, Math.floor(Date.now() / 1000));
    h.fill(0x20, 148, 156);
    put(156, 1, "0");
    put(257, 6, "ustar\0");
    put(263, 2, "00");
    let sum = 0;
    for (const b of h) sum += b;
    put(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
    blocks.push(h, s.value, Buffer.alloc((512 - (s.value.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/**
 * $1: "tmpfs" to mount one first (QEMU); $2: owner uid:gid. The archive is on stdin. Names are
 * validated ([A-Za-z_][A-Za-z0-9_]*), so `"$d"/*` covers every secret written before.
 */
const MATERIALISE = `set -eu
d=${SECRETS_DIR}
umask 077
mkdir -p "$d"
if [ "$1" = tmpfs ] && ! mountpoint -q "$d"; then
  mount -t tmpfs -o mode=0700,size=4m,nosuid,nodev,noexec pyro-secrets "$d"
fi
rm -rf "$d"/*
chmod 0700 "$d"
chown "$2" "$d"
# Short options only, so busybox tar (Alpine images) does as GNU tar: modes kept, and owners
# too since this runs as root. The archive has no directory entry: "$d" keeps its own mode.
tar -xpf - -C "$d"
`;

async function run(
  engine: Engine,
  handle: SandboxHandle,
  argv: string[],
  what: string,
  stdin?: Buffer,
  timeoutMs = 30_000,
): Promise<Buffer> {
  const out = await engine
    .exec(handle, {
      argv,
      cwd: "/",
      timeoutMs,
      maxOutputBytes: 64 * 1024 * 40,
      ...(stdin ? { stdin } : {}),
    })
    .catch((e: unknown) => {
      throw toPyroError(e);
    });
  // No answer says nothing about the secrets: the sandbox is overloaded (or at its process
  // limit), not tampered with. Its own code, so readSecrets does not take it for a change.
  if (out.timedOut)
    throw new PyroError(
      "timeout",
      `${what} got no answer from the sandbox within ${timeoutMs / 1000} s`,
      "the sandbox may be overloaded (a runaway process?); try again, or stop what runs there",
    );
  if (out.exitCode !== 0)
    throw new PyroError(
      "engine_failure",
      `${what} failed in the sandbox (exit ${out.exitCode}): ${out.stderr.trim().slice(0, 300)}`,
      "the environment needs /bin/sh, tar and cat (and mount under QEMU)",
    );
  return out.stdoutBytes ?? Buffer.from(out.stdout, "utf8");
}

/**
 * Writes the secrets into the sandbox (replacing what was there): on create, and again
 * after the sandbox restarts or is reset (its memory, and so the secrets, are gone then).
 * Other modules call it through `WorkspaceManager.materialiseSecrets`.
 */
export async function writeSecrets(
  engine: Engine,
  handle: SandboxHandle,
  secrets: readonly SecretValue[],
  user: { uid: number; gid: number } = { uid: 0, gid: 0 },
): Promise<void> {
  if (secrets.length === 0) return;
  const mode = engine.traits.secretsMount;
  await run(
    engine,
    handle,
    ["/bin/sh", "-c", MATERIALISE, "pyro-secrets", mode, `${user.uid}:${user.gid}`],
    "writing the secrets",
    secretsTar(secrets, user.uid, user.gid),
  );
}

/** A `cat` of a few small files: far longer than it takes, far shorter than a command's 30 s. */
const READ_TIMEOUT_MS = 10_000;

/** The values back from the sandbox, in one exec; sizes must match what was written. */
export async function readSecrets(
  engine: Engine,
  handle: SandboxHandle,
  metas: readonly SecretMeta[],
  workspaceId: string,
): Promise<SecretValue[]> {
  if (metas.length === 0) return [];
  const bytes = await run(
    engine,
    handle,
    ["cat", "--", ...metas.map((m) => `${SECRETS_DIR}/${m.name}`)],
    "reading the secrets back for redaction",
    undefined,
    READ_TIMEOUT_MS,
  ).catch((e: unknown) => {
    const pe = toPyroError(e);
    if (pe.code !== "engine_failure") throw pe;
    throw changed(workspaceId);
  });
  const total = metas.reduce((n, m) => n + m.bytes, 0);
  if (bytes.length !== total) throw changed(workspaceId);
  const out: SecretValue[] = [];
  let at = 0;
  for (const m of metas) {
    out.push({ name: m.name, value: bytes.subarray(at, at + m.bytes) });
    at += m.bytes;
  }
  return out;
}

function changed(id: string): PyroError {
  // Fail closed: without the values, output could not be redacted.
  return new PyroError(
    "invalid_state",
    `the secrets in ${SECRETS_DIR} of workspace ${id} were removed or changed inside the sandbox, so output cannot be redacted`,
    "delete the workspace and create a new one with its secrets",
  );
}

/**
 * argv that sets each [VAR, NAME] from /run/pyro-secrets/NAME for this process only (the value
 * never crosses the host: runsc would put it on a command line). `$(cat; echo x)` keeps
 * trailing newlines exactly.
 */
export function withSecretEnv(argv: readonly string[], pairs: readonly [string, string][]): string[] {
  if (pairs.length === 0) return [...argv];
  const script = `for p; do
  [ "$p" = -- ] && { shift; break; }
  v=\${p%%=*}; n=\${p#*=}
  x=$(cat "${SECRETS_DIR}/$n" && echo x) || { echo "pyro: secret $n is missing from ${SECRETS_DIR}" >&2; exit 126; }
  export "$v=\${x%x}"
  shift
done
exec "$@"`;
  return ["/bin/sh", "-c", script, "pyro-secret-env", ...pairs.map(([v, n]) => `${v}=${n}`), "--", ...argv];
}
