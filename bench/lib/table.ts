/** Judges rows against their targets and renders them as one markdown table. */
import { Figure, Row, Target, isFailed } from './types';

export type Verdict = 'PASS' | 'MISS' | 'ERROR' | '—';

export interface JudgedRow {
  section: string;
  row: Row;
  ratio: number | undefined;
  verdict: Verdict;
}

const OP_TEXT: Record<Target['op'], string> = { '<': '<', '<=': '≤', '>': '>', '>=': '≥' };

function holds(value: number, t: Target): boolean {
  switch (t.op) {
    case '<':
      return value < t.value;
    case '<=':
      return value <= t.value;
    case '>':
      return value > t.value;
    case '>=':
      return value >= t.value;
  }
}

export function judge(section: string, row: Row): JudgedRow {
  if (isFailed(row)) return { section, row, ratio: undefined, verdict: 'ERROR' };
  const ratio = row.baseline && row.baseline.value > 0 ? row.netvol.value / row.baseline.value : undefined;
  let verdict: Verdict = '—';
  if (row.target) {
    const subject = row.target.on === 'ratio' ? ratio : row.netvol.value;
    verdict = subject !== undefined && Number.isFinite(subject) && holds(subject, row.target) ? 'PASS' : 'MISS';
  }
  return { section, row, ratio, verdict };
}

export function formatFigure(f: Figure): string {
  const text = `${f.value.toFixed(f.digits ?? 2)} ${f.unit}`;
  return f.label ? `${text} (${f.label})` : text;
}

function formatTarget(row: Row): string {
  if (isFailed(row) || !row.target) return '—';
  const t = row.target;
  const digits = row.netvol.digits ?? 2;
  return t.on === 'ratio' ? `ratio ${OP_TEXT[t.op]} ${t.value.toFixed(2)}` : `${OP_TEXT[t.op]} ${t.value.toFixed(digits)} ${row.netvol.unit}`;
}

const escapeCell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderTable(rows: readonly JudgedRow[]): string {
  const lines = ['| section | metric | netvol | baseline | ratio | target | result |', '|---|---|---:|---:|---:|---|---|'];
  for (const j of rows) {
    const r = j.row;
    const cells = isFailed(r)
      ? [j.section, r.metric, `failed: ${r.error.split('\n')[0]}`, '', '', '', 'ERROR']
      : [
          j.section,
          r.metric,
          formatFigure(r.netvol),
          r.baseline ? formatFigure(r.baseline) : '—',
          j.ratio !== undefined ? j.ratio.toFixed(2) : '—',
          formatTarget(r),
          j.verdict,
        ];
    lines.push(`| ${cells.map(escapeCell).join(' | ')} |`);
  }
  return lines.join('\n');
}
