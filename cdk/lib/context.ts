/**
 * Context values (`cdk synth -c name=value`, or cdk.json's `context`) to typed values, for
 * every stack of the app. Values given with `-c` are strings; cdk.json values may be real
 * booleans, numbers and lists. An empty value means not given.
 */

export function parseBoolean(value: unknown, name: string): boolean {
  if (value === undefined || value === false || value === 'false' || value === '') {
    return false;
  }
  if (value === true || value === 'true') {
    return true;
  }
  throw new Error(`${name} must be true or false, not '${value}'`);
}

/** `a,b` (from -c) or `["a","b"]` (from cdk.json) to a list; empty means not given. */
export function parseList(value: unknown): string[] | undefined {
  if (value === undefined || value === '') {
    return undefined;
  }
  const list = (Array.isArray(value) ? value : String(value).split(',')).map((v) => String(v).trim()).filter(Boolean);
  return list.length ? list : undefined;
}

export function parseNumber(value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') {
    return undefined;
  }
  const n = Number(value);
  if (!Number.isFinite(n)) {
    throw new Error(`${name} must be a number, not '${value}'`);
  }
  return n;
}

/** A context value as a string; empty means not given. */
export function parseString(value: unknown): string | undefined {
  return value === undefined || value === '' ? undefined : String(value);
}
