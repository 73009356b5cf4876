// Shape arithmetic for the kernels: element counts, merging contiguous axes, padding to the kernels' rank.

/** Axes a strided kernel takes (after merging contiguous ones). */
export const MAX_RANK = 8;

export function product(xs: readonly number[]): number {
  let p = 1;
  for (const x of xs) p *= x;
  return p;
}

/**
 * Drops size-1 axes and merges neighbours that are contiguous in every operand (stride[d] ==
 * stride[d+1] * size[d+1] for each stride list). Returns the merged sizes and stride lists.
 */
export function coalesce(sizes: readonly number[], strideLists: readonly (readonly number[])[]): { sizes: number[]; strides: number[][] } {
  const outSizes: number[] = [];
  const outStrides: number[][] = strideLists.map(() => []);
  for (let d = 0; d < sizes.length; d++) {
    const size = sizes[d]!;
    if (size === 1) continue;
    const last = outSizes.length - 1;
    if (last >= 0 && strideLists.every((s, k) => outStrides[k]![last]! === s[d]! * size)) {
      outSizes[last] = outSizes[last]! * size;
      for (let k = 0; k < strideLists.length; k++) outStrides[k]![last] = strideLists[k]![d]!;
    } else {
      outSizes.push(size);
      for (let k = 0; k < strideLists.length; k++) outStrides[k]!.push(strideLists[k]![d]!);
    }
  }
  return { sizes: outSizes, strides: outStrides };
}


export function padTo(xs: readonly number[], n: number): number[] {
  const out = [...xs];
  while (out.length < n) out.push(0);
  return out;
}

export function checkRank(op: string, rank: number): void {
  if (rank > MAX_RANK) throw new Error(`webgpu ${op}: more than ${MAX_RANK} axes remain after merging contiguous ones (${rank})`);
}
