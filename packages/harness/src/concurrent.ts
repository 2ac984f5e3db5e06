/**
 * Run `task` on every item with at most `jobs` tasks in flight, started in the items' order (the
 * next item starts as soon as a running one settles). Resolves with the results in the items'
 * order, whatever order the tasks finish in.
 *
 * When a task rejects, no further item is started; the tasks already running are awaited, then
 * the promise rejects with the first error (so nothing is left running behind the caller).
 * @param jobs whole number ≥ 1 (a larger number than items just runs them all at once).
 * @throws RangeError when `jobs` is not a whole number ≥ 1.
 */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  jobs: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!Number.isInteger(jobs) || jobs < 1) throw new RangeError(`jobs must be a whole number ≥ 1, got ${jobs}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await task(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
