// A user-facing failure: printed as one line, exit code 1 (usage errors from commander exit with 1 too).
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}

export function parsePositiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw new UserError(`${name} must be a positive integer, got '${value}'`);
  return n;
}

export function parseNonNegativeInt(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new UserError(`${name} must be a non-negative integer, got '${value}'`);
  return n;
}

export function parseNumber(name: string, value: string, check: (n: number) => boolean, what: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || !check(n)) throw new UserError(`${name} must be ${what}, got '${value}'`);
  return n;
}
