import type { Progress } from "../sandbox/context.js";

/**
 * Progress for long work, on stderr so stdout stays the result. On a terminal one line is
 * rewritten in place; elsewhere each step is its own line (useful in CI logs).
 */
export function progressPrinter(stream: NodeJS.WriteStream = process.stderr): {
  update: (p: Progress) => void;
  done: () => void;
} {
  const tty = stream.isTTY === true;
  // PYRO_QUIET=1: scripts that want stderr for the command's own output get nothing of ours.
  const quiet = process.env.PYRO_QUIET === "1";
  let shown = false;
  const started = Date.now();
  return {
    update(p) {
      if (quiet) return;
      const secs = ((Date.now() - started) / 1000).toFixed(0);
      const line = `pyro: [${secs}s] ${p.message}`;
      if (tty) {
        const width = (stream.columns || 100) - 1;
        stream.write(`\r\x1b[2K${line.slice(0, width)}`);
        shown = true;
      } else {
        stream.write(`${line}\n`);
      }
    },
    done() {
      if (tty && shown) stream.write("\r\x1b[2K");
      shown = false;
    },
  };
}
