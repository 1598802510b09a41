/** An error answered as JSON {error, field, reason} with `status` (serving/app.ts error handler). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly field: string,
    readonly reason: string,
  ) {
    super(reason);
    this.name = "HttpError";
  }
}
