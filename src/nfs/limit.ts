// Runs task(0..count-1) with at most `limit` running at once. After the first
// failure no new task starts; the first error is thrown once running ones end.

export async function runLimited(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      try {
        await task(i);
      } catch (err) {
        if (!failed) {
          failed = true;
          firstError = err;
        }
      }
    }
  };
  const workers: Promise<void>[] = [];
  for (let k = 0; k < Math.max(1, Math.min(limit, count)); k++) workers.push(worker());
  await Promise.all(workers);
  if (failed) throw firstError;
}
