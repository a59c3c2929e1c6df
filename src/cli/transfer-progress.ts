import { Transform } from 'node:stream';
import cliProgress from 'cli-progress';
// The leaf module, not the driver's index: netvolctl starts without loading the driver (over a second).
import { formatSize } from '../driver/sizes';

/**
 * A byte counter for a stream, with a progress bar on stderr (bytes, rate, ETA; cli-progress) only
 * when stderr is a terminal: piped or in scripts, netvolctl stays quiet. The total is an estimate
 * and grows when the transfer passes it.
 */
export class TransferProgress {
  private bar?: cliProgress.SingleBar;
  private bytes = 0;
  private readonly started = Date.now();
  private total: number;

  constructor(label: string, total: number | undefined, show = process.stderr.isTTY === true) {
    this.total = total && total > 0 ? total : 0;
    if (!show) return;
    this.bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: `${label} {bar} {percentage}% | {done} / {size} | {rate}/s | ETA {eta_formatted}`,
        hideCursor: true,
        etaBuffer: 50,
        fps: 5,
        barsize: 30,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(Math.max(this.total, 1), 0, this.payload());
  }

  /** A pass-through stream that counts what goes through it. */
  meter(): Transform {
    return new Transform({
      highWaterMark: 1 << 20,
      transform: (chunk: Buffer, _enc, done) => {
        this.add(chunk.length);
        done(null, chunk);
      },
    });
  }

  add(n: number): void {
    this.bytes += n;
    if (!this.bar) return;
    if (this.bytes > this.total) {
      this.total = Math.ceil(this.bytes * 1.05);
      this.bar.setTotal(this.total);
    }
    this.bar.update(this.bytes, this.payload());
  }

  /** A count measured elsewhere (the daemon's tar in a direct transfer). */
  set(bytes: number): void {
    if (bytes > this.bytes) this.add(bytes - this.bytes);
  }

  get transferred(): number {
    return this.bytes;
  }

  /** Stops the bar; `ok` shows it full (the estimate was only an estimate). */
  stop(ok: boolean): void {
    if (!this.bar) return;
    if (ok) {
      this.bar.setTotal(Math.max(this.bytes, 1));
      this.bar.update(this.bytes, this.payload());
    }
    this.bar.stop();
    this.bar = undefined;
  }

  private payload(): Record<string, string> {
    const seconds = Math.max((Date.now() - this.started) / 1000, 0.001);
    return { done: formatSize(this.bytes), size: this.total ? formatSize(this.total) : '?', rate: formatSize(Math.round(this.bytes / seconds)) };
  }
}
