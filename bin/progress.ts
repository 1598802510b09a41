/**
 * A minimal progress bar on stderr. On a TTY it redraws one line; otherwise it prints at most
 * every 10% so CI logs stay readable. Silent when MASTERY_QUIET=1.
 */
export class Progress {
  private done = 0;
  private lastPrinted = -1;
  private readonly started = performance.now();
  private readonly tty = process.stderr.isTTY === true;
  private readonly quiet = process.env.MASTERY_QUIET === "1";

  constructor(
    private readonly label: string,
    private readonly total: number,
  ) {}

  tick(n = 1): void {
    this.done += n;
    this.render(false);
  }

  set(done: number): void {
    this.done = done;
    this.render(false);
  }

  finish(note = ""): void {
    this.done = this.total;
    this.render(true, note);
  }

  private render(final: boolean, note = ""): void {
    if (this.quiet) return;
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const pct = Math.floor(frac * 100);
    const secs = ((performance.now() - this.started) / 1000).toFixed(1);
    if (this.tty) {
      if (!final && pct === this.lastPrinted) return;
      const width = 24;
      const filled = Math.round(frac * width);
      const bar = `${"#".repeat(filled)}${".".repeat(width - filled)}`;
      process.stderr.write(
        `\r${this.label.padEnd(22)} [${bar}] ${String(pct).padStart(3)}% ${secs}s ${note}`,
      );
      if (final) process.stderr.write("\n");
    } else {
      const step = Math.floor(pct / 10);
      if (!final && step === this.lastPrinted) return;
      if (final || step !== this.lastPrinted) {
        process.stderr.write(`${this.label}: ${pct}% (${secs}s)${note ? ` ${note}` : ""}\n`);
      }
      this.lastPrinted = step;
      return;
    }
    this.lastPrinted = pct;
  }
}
