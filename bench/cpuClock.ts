/** Process CPU seconds so far (user + system, every thread: DuckDB's and the workers' included). */
export function cpuNow(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Median of `xs` (mean of the two middle values for an even count), rounded to `digits` decimals. */
export function roundedMedian(xs: readonly number[], digits = 3): number {
  const s = [...xs].sort((a, b) => a - b);
  return Number((s[(s.length - 1) >> 1]! / 2 + s[s.length >> 1]! / 2).toFixed(digits));
}
