import bytes from 'bytes';

/*
 * Sizes as users write and read them. A leaf module (no schema library, nothing of the driver):
 * netvolctl prints sizes without loading the driver.
 */

/** Parses "512M", "10G", "1.5T", "100MiB", "2gb" (binary units) into bytes. */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp])?(?:i?b)?\s*$/i.exec(text);
  if (!m) return undefined;
  if (!m[2]) return Number.isInteger(Number(m[1])) ? Number(m[1]) : undefined;
  const value = bytes.parse(`${m[1]}${m[2].toUpperCase()}B`);
  return value === null ? undefined : value;
}

export function formatSize(n: number): string {
  return (bytes.format(n, { decimalPlaces: 1, fixedDecimals: true, unitSeparator: ' ' }) ?? `${n} B`).replace(/([KMGTP])B$/, '$1iB');
}
