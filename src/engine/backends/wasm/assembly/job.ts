// @ts-nocheck  (AssemblyScript, compiled by scripts/build-wasm.mjs; not part of the TypeScript program)
// What every job block shares: its kind and the atomic counter from which threads take their work.
export const J_KIND = 0;
export const J_COUNTER = 1;

/** The start of the next chunk of [0, total) for this thread (chunks of `chunk`), or -1 when none is left. */
export function claimChunk(job: usize, total: i32, chunk: i32): i32 {
  const start = atomic.add<i32>(job + (<usize>J_COUNTER << 2), 1) * chunk;
  return start < total ? start : -1;
}
