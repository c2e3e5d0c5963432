/**
 * gVisor runs a program directly and, only when runsc says it could not start it, runs it
 * again through the shell wrapper (engine.ts). runsc's "could not start" message arrives on
 * the command's stderr, so streamed live it would reach the caller's terminal and the output
 * log although the retry then reports the shell's own message. This gate holds stderr back
 * only while everything seen so far could still be the start of such a runsc message (it
 * always begins with one of a few fixed prefixes); once stdout arrives or stderr diverges,
 * it flushes and passes every later chunk straight through. No timing is involved.
 */
const RUNSC_ERROR_PREFIXES = [
  "executing processes for container: ",
  "running container: ",
  "creating container: ",
  "starting container: ",
];

export class StderrGate {
  private held: Buffer[] = [];
  private heldText = "";
  private open = false;

  constructor(private readonly sink: ((chunk: Buffer) => void) | undefined) {}

  private couldBeRunscError(): boolean {
    return RUNSC_ERROR_PREFIXES.some((p) => p.startsWith(this.heldText) || this.heldText.startsWith(p));
  }

  /** For stderr chunks. */
  readonly stderr = (chunk: Buffer): void => {
    if (!this.sink) return;
    if (this.open) {
      this.sink(chunk);
      return;
    }
    this.held.push(chunk);
    // Only the first bytes matter; a runsc message is one line at the start of stderr.
    if (this.heldText.length < 64) this.heldText += chunk.toString("latin1").slice(0, 64);
    if (!this.couldBeRunscError()) this.flush();
  };

  /** Output on stdout means the program ran: nothing held back is runsc's. */
  readonly sawStdout = (): void => {
    if (!this.open) this.flush();
  };

  /** Passes on what is held and opens the gate. */
  flush(): void {
    this.open = true;
    for (const c of this.held.splice(0)) this.sink?.(c);
  }

  /** Drops what is held: it was runsc's message, and the program runs again. */
  discard(): void {
    this.held = [];
    this.heldText = "";
  }
}
