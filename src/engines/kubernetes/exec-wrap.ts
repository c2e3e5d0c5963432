import { IN_SANDBOX_DEADLINE_GRACE_MS } from "../gvisor/bundle.js";
import type { ExecRequest } from "../types.js";

/**
 * What the API server's exec gives and lacks, and the small shell wrapper that fills it in.
 * Exec through the API server has no cwd, environment, user or deadline, and closing its
 * stream does not end the process (the kubelet leaves it running). So every command runs as
 *
 *   sh -c WRAP pyro-exec TAG CWD SECONDS UID:GID [env -- K=V...] argv...
 *
 * which notes its pid under TAG (so a cancel or a host-side timeout can kill it with a second
 * exec), enters CWD, and `exec`s `timeout -k 2 SECONDS`: the deadline holds inside the pod
 * with no pyro process alive, and a program that cannot start exits 127/126 as under a shell.
 * `timeout` makes itself a process-group leader, so the group id is the noted pid. Pure: the
 * unit tests run the wrapper with the host's own sh and coreutils.
 */
export const PID_DIR = "/tmp/.pyro-exec";

const WRAP = `d=${PID_DIR}
[ -d "$d" ] || mkdir -p "$d" 2>/dev/null
for f in "$d"/*; do
  [ -e "$f" ] || continue
  p=; read -r p < "$f" 2>/dev/null
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || rm -f "$f"
done
echo $$ > "$d/$1" 2>/dev/null
cd "$2" 2>/dev/null || { printf 'pyro: cannot enter %s\\n' "$2" >&2; exit 1; }
t=$3; u=$4; shift 4
if [ -n "$u" ]; then
  exec timeout -k 2 "$t" setpriv --reuid="\${u%:*}" --regid="\${u#*:}" --clear-groups -- "$@"
fi
exec timeout -k 2 "$t" "$@"`;

/** Kills the wrapped command's process group noted under TAG (TERM, then KILL), and forgets it. */
const KILL = `f=${PID_DIR}/$1; i=0
while [ ! -s "$f" ] && [ $i -lt 10 ]; do sleep 0.1; i=$((i + 1)); done
p=; read -r p < "$f" 2>/dev/null || exit 0
kill -TERM "-$p" 2>/dev/null
i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
kill -KILL "-$p" 2>/dev/null
rm -f "$f"; exit 0`;

/** The in-pod deadline: the host's timer fires first and reports the timeout. */
export function podDeadlineSeconds(timeoutMs: number): number {
  return Math.ceil((timeoutMs + IN_SANDBOX_DEADLINE_GRACE_MS) / 1000);
}

export function wrapArgv(
  req: Pick<ExecRequest, "argv" | "cwd" | "env" | "user" | "timeoutMs">,
  tag: string,
): string[] {
  const env = Object.entries(req.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const user =
    req.user && (req.user.uid !== 0 || req.user.gid !== 0) ? `${req.user.uid}:${req.user.gid}` : "";
  return [
    "/bin/sh",
    "-c",
    WRAP,
    "pyro-exec",
    tag,
    req.cwd ?? "/workspace",
    String(podDeadlineSeconds(req.timeoutMs)),
    user,
    ...(env.length ? ["env", "--", ...env] : []),
    ...req.argv,
  ];
}

export function killArgv(tag: string): string[] {
  return ["/bin/sh", "-c", KILL, "pyro-kill", tag];
}

/** The part of a `metav1.Status` the exec's status channel (3) carries. */
export interface ExecStatus {
  status?: string;
  message?: string;
  reason?: string;
  details?: { causes?: { reason?: string; message?: string }[] };
}

/**
 * The exit code an exec status says, or an error message when the exec itself failed (the
 * container is gone, the runtime refused): `Success` is 0, `NonZeroExitCode` carries the code
 * as the `ExitCode` cause's message.
 */
export function exitFromStatus(s: ExecStatus): { exitCode: number } | { error: string } {
  if (s.status === "Success") return { exitCode: 0 };
  if (s.reason === "NonZeroExitCode") {
    const cause = s.details?.causes?.find((c) => c.reason === "ExitCode");
    const code = Number(cause?.message);
    if (Number.isInteger(code) && code >= 0) return { exitCode: code };
  }
  return { error: s.message || s.reason || "the exec failed without a reason" };
}
