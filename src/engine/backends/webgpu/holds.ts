// Arrays that recorded-but-not-yet-encoded work still reads (a pending expression's leaves, a pending
// flip's source). The owner may release one at any time; its buffer must not go back to the pool, where a
// later kernel could take it as an output, until the last reader is encoded or dropped.
export class Holds<A> {
  private readonly counts = new Map<A, number>();
  /** Held arrays their owner released: released for good when the last hold ends. */
  private readonly releaseWhenFree = new Set<A>();

  constructor(private readonly release: (array: A) => void) {}

  /** How many arrays are held now. */
  get size(): number {
    return this.counts.size;
  }

  hold(array: A): void {
    this.counts.set(array, (this.counts.get(array) ?? 0) + 1);
  }

  unhold(array: A): void {
    const left = this.counts.get(array)! - 1;
    if (left > 0) {
      this.counts.set(array, left);
      return;
    }
    this.counts.delete(array);
    if (this.releaseWhenFree.delete(array)) this.release(array);
  }

  /** True when `array` is held: its release then happens when the last hold ends. */
  deferRelease(array: A): boolean {
    if (!this.counts.has(array)) return false;
    this.releaseWhenFree.add(array);
    return true;
  }
}
