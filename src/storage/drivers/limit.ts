// Bounded concurrency for the object-storage drivers: many small requests (parts, copies, deletes) a few at a time.

/**
 * Runs `fn` over `items` with at most `limit` calls in flight. After the first failure no new call starts; it rejects
 * with that failure once the calls in flight have settled, so nothing is left running behind the caller's back.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.err;
}
