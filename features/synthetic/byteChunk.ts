/**
 * An append-only ASCII byte buffer for CSV rows. Writing digits and precomputed id bytes
 * straight into a Uint8Array avoids creating a string per field, which in a string-concatenation
 * writer made garbage collection the dominant cost (over half the run time at 500k events).
 */

const DOT = 46;
const ZERO = 48;
const MINUS = 45;

export class ByteChunk {
  buf: Uint8Array;
  pos = 0;

  constructor(capacity = 1 << 20) {
    this.buf = new Uint8Array(capacity);
  }

  /** Makes room for at least `n` more bytes (call once per row with a generous bound). */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /** Returns the bytes written so far (own buffer, safe to transfer) and starts a fresh chunk. */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }

  byte(c: number): void {
    this.buf[this.pos++] = c;
  }

  bytes(b: Uint8Array): void {
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < b.length; i++) buf[p++] = b[i]!;
    this.pos = p;
  }

  /** A non-negative integer in decimal. */
  uint(n: number): void {
    if (n < 10) {
      this.buf[this.pos++] = ZERO + n;
      return;
    }
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    const buf = this.buf;
    let p = this.pos + digits;
    this.pos = p;
    do {
      const q = Math.floor(n / 10);
      buf[--p] = ZERO + (n - q * 10);
      n = q;
    } while (n > 0);
  }

  /** A non-negative integer left-padded with zeros to `width` digits (wider numbers are written in full). */
  uintPadded(n: number, width: number): void {
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    for (let i = digits; i < width; i++) this.buf[this.pos++] = ZERO;
    this.uint(n);
  }

  /** A number rounded to `decimals` places, always written with that many decimals (e.g. 81.0, 0.4627). */
  fixed(x: number, decimals: number): void {
    const scale = 10 ** decimals;
    let v = Math.round(x * scale);
    if (v < 0) {
      this.buf[this.pos++] = MINUS;
      v = -v;
    }
    const int = Math.floor(v / scale);
    this.uint(int);
    this.buf[this.pos++] = DOT;
    this.uintPadded(v - int * scale, decimals);
  }
}

/** ASCII bytes of a string (ids and constant fragments are all ASCII). */
export function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0x7f;
  return out;
}
