import Table from 'cli-table3';
// The leaf module, not the driver's index: netvolctl starts without loading the driver (over a second).
import { formatSize } from '../driver/sizes';

/** A table for people: borderless, one header row (cli-table3). */
export function table(head: string[], rows: Array<Array<string | number>>): string {
  const t = new Table({
    head,
    chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const r of rows) t.push(r.map(String));
  return `${t.toString().split('\n').map((l) => l.trimEnd()).join('\n')}\n`;
}

/** JSON for scripts. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function size(n: number | undefined): string {
  return n === undefined ? '-' : formatSize(n);
}
