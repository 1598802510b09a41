/**
 * Store error classification lives in storage/unavailable.ts (`faultKind`: unavailable / data /
 * other); these names are kept for the intake and HTTP error table.
 */
import { redactSecrets } from "./unavailable.ts";

export { type FaultKind as StoreErrorKind, faultKind as storeErrorKind } from "./unavailable.ts";

/**
 * An error message fit for a log line: credentials removed (redactSecrets: URL passwords,
 * password=…), quoted parts ('...' and "...", where drivers and parsers put the offending values,
 * possibly a raw student id) replaced by '…', at most 300 characters.
 */
export function redactErrorMessage(message: string): string {
  return (
    redactSecrets(message)
      .replace(/'(?:[^'\\]|\\.)*'/g, "'…'")
      .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
      .replace(/[\u0000-\u001f]/g, " ")
      .slice(0, 300)
  );
}
