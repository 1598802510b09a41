/**
 * The protobuf wire format (https://protobuf.dev/programming-guides/encoding/), just enough of it to write and
 * read ONNX models: varints (int32/int64/enum, negative int64 as 10-byte two's complement), fixed32 (float),
 * fixed64 (double) and length-delimited fields (strings, bytes, nested messages, packed repeated scalars).
 * Pure functions over Uint8Array; the ONNX message layer (onnxProto.ts) sits on top.
 */

export class ProtobufError extends Error {
  readonly code = "PROTOBUF";
  override readonly name = "ProtobufError";
}

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Append-only byte buffer that grows by doubling. */
export class ProtoWriter {
  private buf = new Uint8Array(256);
  private pos = 0;
  private readonly scratch = new DataView(new ArrayBuffer(8));

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /** Unsigned varint of a non-negative safe integer, or any int64 (negatives as two's complement). */
  varint(v: number | bigint): void {
    if (typeof v === "number" && v >= 0 && Number.isSafeInteger(v)) {
      this.ensure(8);
      let x = v;
      while (x >= 0x80) {
        this.buf[this.pos++] = (x % 0x80) | 0x80;
        x = Math.floor(x / 0x80);
      }
      this.buf[this.pos++] = x;
      return;
    }
    if (typeof v === "number" && !Number.isSafeInteger(v))
      throw new ProtobufError(`varint value ${v} is not a safe integer`);
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (x >= 0x80n) {
      this.buf[this.pos++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.pos++] = Number(x);
  }

  key(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  float32(v: number): void {
    this.ensure(4);
    this.scratch.setFloat32(0, v, true);
    for (let i = 0; i < 4; i++) this.buf[this.pos++] = this.scratch.getUint8(i);
  }

  float64(v: number): void {
    this.ensure(8);
    this.scratch.setFloat64(0, v, true);
    for (let i = 0; i < 8; i++) this.buf[this.pos++] = this.scratch.getUint8(i);
  }

  // Field helpers (key + value).
  intField(field: number, v: number | bigint): void {
    this.key(field, WIRE_VARINT);
    this.varint(v);
  }

  floatField(field: number, v: number): void {
    this.key(field, WIRE_FIXED32);
    this.float32(v);
  }

  bytesField(field: number, b: Uint8Array): void {
    this.key(field, WIRE_LEN);
    this.bytes(b);
  }

  stringField(field: number, s: string): void {
    this.bytesField(field, utf8.encode(s));
  }

  /** A nested message: encoded separately so its length prefix is known. */
  messageField(field: number, encode: (w: ProtoWriter) => void): void {
    const inner = new ProtoWriter();
    encode(inner);
    this.bytesField(field, inner.finish());
  }

  /** Packed repeated int64 (one length-delimited field of varints). */
  packedInts(field: number, vs: ArrayLike<number>): void {
    const inner = new ProtoWriter();
    for (let i = 0; i < vs.length; i++) inner.varint(vs[i]!);
    this.bytesField(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

/** One decoded field occurrence: varints as number (int64 beyond 2^53 lose precision), the rest as bytes. */
export type ProtoValue =
  | { wire: typeof WIRE_VARINT; n: number }
  | { wire: typeof WIRE_FIXED32; bytes: Uint8Array }
  | { wire: typeof WIRE_FIXED64; bytes: Uint8Array }
  | { wire: typeof WIRE_LEN; bytes: Uint8Array };

/** All fields of one message by field number, in wire order (repeated fields keep every occurrence). */
export type ProtoFields = Map<number, ProtoValue[]>;

function readVarint(buf: Uint8Array, start: number): { n: number; next: number } {
  let n = 0;
  let mul = 1;
  let pos = start;
  for (let k = 0; k < 10; k++) {
    if (pos >= buf.length) throw new ProtobufError(`truncated varint at byte ${start}`);
    const b = buf[pos++]!;
    if (k < 7) {
      n += (b & 0x7f) * mul;
      mul *= 0x80;
      if ((b & 0x80) === 0) return { n, next: pos };
      continue;
    }
    if ((b & 0x80) === 0) {
      // Longer than 49 bits: decode exactly as a signed int64 (negative int64 fields take 10 bytes).
      let x = 0n;
      for (let j = pos - 1; j >= start; j--) x = (x << 7n) | BigInt(buf[j]! & 0x7f);
      return { n: Number(BigInt.asIntN(64, x)), next: pos };
    }
  }
  throw new ProtobufError(`varint longer than 10 bytes at byte ${start}`);
}

/** Splits a message into its fields. Unknown fields are kept (callers ignore what they do not need). */
export function decodeFields(buf: Uint8Array): ProtoFields {
  const out: ProtoFields = new Map();
  let pos = 0;
  while (pos < buf.length) {
    const k = readVarint(buf, pos);
    pos = k.next;
    const field = Math.floor(k.n / 8);
    const wire = k.n % 8;
    let value: ProtoValue;
    if (wire === WIRE_VARINT) {
      const v = readVarint(buf, pos);
      pos = v.next;
      value = { wire, n: v.n };
    } else if (wire === WIRE_FIXED32 || wire === WIRE_FIXED64) {
      const len = wire === WIRE_FIXED32 ? 4 : 8;
      if (pos + len > buf.length) throw new ProtobufError(`truncated fixed field ${field} at byte ${pos}`);
      value = { wire, bytes: buf.subarray(pos, pos + len) };
      pos += len;
    } else if (wire === WIRE_LEN) {
      const len = readVarint(buf, pos);
      pos = len.next;
      if (pos + len.n > buf.length)
        throw new ProtobufError(`field ${field} claims ${len.n} bytes but only ${buf.length - pos} remain`);
      value = { wire, bytes: buf.subarray(pos, pos + len.n) };
      pos += len.n;
    } else {
      throw new ProtobufError(`unsupported wire type ${wire} for field ${field} at byte ${pos}`);
    }
    const list = out.get(field);
    if (list === undefined) out.set(field, [value]);
    else list.push(value);
  }
  return out;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Field accessors: each takes the decoded fields and a field number. */
export const read = {
  int(f: ProtoFields, field: number, dflt = 0): number {
    const last = f.get(field)?.at(-1);
    if (last === undefined) return dflt;
    if (last.wire !== WIRE_VARINT) throw new ProtobufError(`field ${field} is not a varint`);
    return last.n;
  },
  string(f: ProtoFields, field: number, dflt = ""): string {
    const last = f.get(field)?.at(-1);
    if (last === undefined) return dflt;
    return utf8Decoder.decode(read.lenBytes(last, field));
  },
  strings(f: ProtoFields, field: number): string[] {
    return (f.get(field) ?? []).map((v) => utf8Decoder.decode(read.lenBytes(v, field)));
  },
  bytes(f: ProtoFields, field: number): Uint8Array | null {
    const last = f.get(field)?.at(-1);
    return last === undefined ? null : read.lenBytes(last, field);
  },
  messages(f: ProtoFields, field: number): ProtoFields[] {
    return (f.get(field) ?? []).map((v) => decodeFields(read.lenBytes(v, field)));
  },
  message(f: ProtoFields, field: number): ProtoFields | null {
    const last = f.get(field)?.at(-1);
    return last === undefined ? null : decodeFields(read.lenBytes(last, field));
  },
  lenBytes(v: ProtoValue, field: number): Uint8Array {
    if (v.wire !== WIRE_LEN) throw new ProtobufError(`field ${field} is not length-delimited`);
    return v.bytes;
  },
  float(f: ProtoFields, field: number, dflt = 0): number {
    const last = f.get(field)?.at(-1);
    if (last === undefined) return dflt;
    if (last.wire !== WIRE_FIXED32) throw new ProtobufError(`field ${field} is not a float`);
    return view(last.bytes).getFloat32(0, true);
  },
  /** Repeated varints, packed or not (parsers must accept both). */
  ints(f: ProtoFields, field: number): number[] {
    const out: number[] = [];
    for (const v of f.get(field) ?? []) {
      if (v.wire === WIRE_VARINT) out.push(v.n);
      else if (v.wire === WIRE_LEN) {
        let pos = 0;
        while (pos < v.bytes.length) {
          const r = readVarint(v.bytes, pos);
          out.push(r.n);
          pos = r.next;
        }
      } else throw new ProtobufError(`field ${field} holds wire type ${v.wire}, expected varints`);
    }
    return out;
  },
  /** Repeated float32, packed or not. */
  floats(f: ProtoFields, field: number): number[] {
    return read.fixed(f, field, 4);
  },
  /** Repeated float64, packed or not. */
  doubles(f: ProtoFields, field: number): number[] {
    return read.fixed(f, field, 8);
  },
  fixed(f: ProtoFields, field: number, size: 4 | 8): number[] {
    const out: number[] = [];
    const wireOne = size === 4 ? WIRE_FIXED32 : WIRE_FIXED64;
    for (const v of f.get(field) ?? []) {
      if (v.wire !== wireOne && v.wire !== WIRE_LEN)
        throw new ProtobufError(`field ${field} holds wire type ${v.wire}, expected ${size}-byte floats`);
      if (v.bytes.length % size !== 0)
        throw new ProtobufError(`field ${field}: ${v.bytes.length} bytes is not a multiple of ${size}`);
      const dv = view(v.bytes);
      for (let o = 0; o < v.bytes.length; o += size)
        out.push(size === 4 ? dv.getFloat32(o, true) : dv.getFloat64(o, true));
    }
    return out;
  },
};
