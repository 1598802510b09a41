/**
 * The subset of onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto, proto2 syntax) that our
 * exporters and importers need: ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
 * ValueInfoProto (tensor types only), OperatorSetIdProto and StringStringEntryProto. Field numbers are the
 * public ones from onnx.proto; unknown fields are skipped on read. Pure functions over Uint8Array.
 */
import { decodeFields, type ProtoFields, ProtoWriter, read, WIRE_FIXED32, WIRE_VARINT } from "./protobuf.ts";

/** TensorProto.DataType values we use. */
export const DataType = { FLOAT: 1, UINT8: 2, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, DOUBLE: 11 } as const;

/** AttributeProto.AttributeType values. */
const AttrType = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
} as const;

export class OnnxFormatError extends Error {
  readonly code = "ONNX_FORMAT";
  override readonly name = "OnnxFormatError";
}

/** A constant tensor. float/double hold their values; int64 values must be safe integers. */
export type OnnxTensor =
  | { name: string; dims: number[]; dataType: typeof DataType.FLOAT; data: Float32Array }
  | { name: string; dims: number[]; dataType: typeof DataType.DOUBLE; data: Float64Array }
  | { name: string; dims: number[]; dataType: typeof DataType.INT64; data: number[] }
  | { name: string; dims: number[]; dataType: typeof DataType.BOOL; data: Uint8Array };

export type OnnxAttribute =
  | { name: string; type: "float"; f: number }
  | { name: string; type: "int"; i: number }
  | { name: string; type: "string"; s: string }
  | { name: string; type: "tensor"; t: OnnxTensor }
  | { name: string; type: "floats"; floats: ArrayLike<number> }
  | { name: string; type: "ints"; ints: ArrayLike<number> }
  | { name: string; type: "strings"; strings: string[] };

export interface OnnxNode {
  name: string;
  opType: string;
  /** "" = the default ai.onnx domain. */
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: OnnxAttribute[];
}

/** A tensor-typed graph input/output; a shape entry is a fixed size or a symbolic name (e.g. "N"). */
export interface OnnxValueInfo {
  name: string;
  elemType: number;
  shape: (number | string)[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  docString: string;
}

export interface OnnxModel {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  graph: OnnxGraph;
  opsetImports: { domain: string; version: number }[];
  metadataProps: { key: string; value: string }[];
}

// ---------------------------------------------------------------------------------------------------------
// Writing.

function writeTensor(w: ProtoWriter, t: OnnxTensor): void {
  for (const d of t.dims) w.intField(1, d); // dims
  w.intField(2, t.dataType); // data_type
  w.stringField(8, t.name); // name
  if (t.dataType === DataType.INT64) {
    w.packedInts(7, t.data); // int64_data [packed = true]
    return;
  }
  // raw_data: fixed-width little-endian, the usual encoding for numeric initializers.
  const src = t.data;
  w.bytesField(9, new Uint8Array(src.buffer, src.byteOffset, src.byteLength).slice());
}

function writeAttribute(w: ProtoWriter, a: OnnxAttribute): void {
  w.stringField(1, a.name);
  switch (a.type) {
    case "float":
      w.floatField(2, a.f);
      w.intField(20, AttrType.FLOAT);
      break;
    case "int":
      w.intField(3, a.i);
      w.intField(20, AttrType.INT);
      break;
    case "string":
      w.stringField(4, a.s);
      w.intField(20, AttrType.STRING);
      break;
    case "tensor":
      w.messageField(5, (m) => writeTensor(m, a.t));
      w.intField(20, AttrType.TENSOR);
      break;
    case "floats":
      // onnx.proto declares `repeated float floats = 7;` without [packed]: one fixed32 field per value.
      for (let i = 0; i < a.floats.length; i++) w.floatField(7, a.floats[i]!);
      w.intField(20, AttrType.FLOATS);
      break;
    case "ints":
      for (let i = 0; i < a.ints.length; i++) w.intField(8, a.ints[i]!);
      w.intField(20, AttrType.INTS);
      break;
    case "strings":
      for (const s of a.strings) w.stringField(9, s);
      w.intField(20, AttrType.STRINGS);
      break;
  }
}

function writeNode(w: ProtoWriter, n: OnnxNode): void {
  for (const i of n.inputs) w.stringField(1, i);
  for (const o of n.outputs) w.stringField(2, o);
  w.stringField(3, n.name);
  w.stringField(4, n.opType);
  for (const a of n.attributes) w.messageField(5, (m) => writeAttribute(m, a));
  if (n.domain !== "") w.stringField(7, n.domain);
}

function writeValueInfo(w: ProtoWriter, v: OnnxValueInfo): void {
  w.stringField(1, v.name);
  // TypeProto.tensor_type = 1 { elem_type = 1; shape = 2 { dim = 1 { dim_value = 1 | dim_param = 2 } } }
  w.messageField(2, (type) =>
    type.messageField(1, (tensor) => {
      tensor.intField(1, v.elemType);
      tensor.messageField(2, (shape) => {
        for (const d of v.shape)
          shape.messageField(1, (dim) => {
            if (typeof d === "number") dim.intField(1, d);
            else dim.stringField(2, d);
          });
      });
    }),
  );
}

function writeGraph(w: ProtoWriter, g: OnnxGraph): void {
  for (const n of g.nodes) w.messageField(1, (m) => writeNode(m, n));
  w.stringField(2, g.name);
  for (const t of g.initializers) w.messageField(5, (m) => writeTensor(m, t));
  if (g.docString !== "") w.stringField(10, g.docString);
  for (const v of g.inputs) w.messageField(11, (m) => writeValueInfo(m, v));
  for (const v of g.outputs) w.messageField(12, (m) => writeValueInfo(m, v));
}

/** Serialises a model to the bytes of a .onnx file. */
export function encodeModel(model: OnnxModel): Uint8Array {
  const w = new ProtoWriter();
  w.intField(1, model.irVersion);
  w.stringField(2, model.producerName);
  w.stringField(3, model.producerVersion);
  w.stringField(4, model.domain);
  w.intField(5, model.modelVersion);
  w.stringField(6, model.docString);
  w.messageField(7, (m) => writeGraph(m, model.graph));
  for (const o of model.opsetImports)
    w.messageField(8, (m) => {
      m.stringField(1, o.domain);
      m.intField(2, o.version);
    });
  for (const p of model.metadataProps)
    w.messageField(14, (m) => {
      m.stringField(1, p.key);
      m.stringField(2, p.value);
    });
  return w.finish();
}

// ---------------------------------------------------------------------------------------------------------
// Reading.

function readTensor(f: ProtoFields): OnnxTensor {
  const name = read.string(f, 8);
  const dims = read.ints(f, 1);
  const dataType = read.int(f, 2);
  const raw = read.bytes(f, 9);
  const size = dims.reduce((a, b) => a * b, 1);
  const fromRaw = (bytesPer: number): DataView | null => {
    if (raw === null || raw.length === 0) return null;
    if (raw.length !== size * bytesPer)
      throw new OnnxFormatError(
        `tensor "${name}" raw_data has ${raw.length} bytes; dims ${dims.join("x")} need ${size * bytesPer}`,
      );
    return new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  };
  if (dataType === DataType.FLOAT) {
    const dv = fromRaw(4);
    const data = dv === null ? Float32Array.from(read.floats(f, 4)) : new Float32Array(size);
    if (dv !== null) for (let i = 0; i < size; i++) data[i] = dv.getFloat32(i * 4, true);
    return { name, dims, dataType, data };
  }
  if (dataType === DataType.DOUBLE) {
    const dv = fromRaw(8);
    const data = dv === null ? Float64Array.from(read.doubles(f, 10)) : new Float64Array(size);
    if (dv !== null) for (let i = 0; i < size; i++) data[i] = dv.getFloat64(i * 8, true);
    return { name, dims, dataType, data };
  }
  if (dataType === DataType.INT64) {
    const dv = fromRaw(8);
    const data = dv === null ? read.ints(f, 7) : [];
    if (dv !== null) for (let i = 0; i < size; i++) data.push(Number(dv.getBigInt64(i * 8, true)));
    return { name, dims, dataType, data };
  }
  if (dataType === DataType.BOOL) {
    const data = raw !== null && raw.length > 0 ? raw.slice() : Uint8Array.from(read.ints(f, 5));
    return { name, dims, dataType, data };
  }
  throw new OnnxFormatError(
    `tensor "${name}" has data_type ${dataType}; only float (1), double (11), int64 (7) and bool (9) are read`,
  );
}

function readAttribute(f: ProtoFields): OnnxAttribute {
  const name = read.string(f, 1);
  let type = read.int(f, 20);
  if (type === 0) {
    // Pre-IR-3 files may omit `type`; infer it from the populated field.
    if (f.has(7)) type = AttrType.FLOATS;
    else if (f.has(8)) type = AttrType.INTS;
    else if (f.has(9)) type = AttrType.STRINGS;
    else if (f.has(5)) type = AttrType.TENSOR;
    else if (f.has(4)) type = AttrType.STRING;
    else if (f.get(2)?.[0]?.wire === WIRE_FIXED32) type = AttrType.FLOAT;
    else if (f.get(3)?.[0]?.wire === WIRE_VARINT) type = AttrType.INT;
  }
  switch (type) {
    case AttrType.FLOAT:
      return { name, type: "float", f: read.float(f, 2) };
    case AttrType.INT:
      return { name, type: "int", i: read.int(f, 3) };
    case AttrType.STRING:
      return { name, type: "string", s: read.string(f, 4) };
    case AttrType.TENSOR: {
      const t = read.message(f, 5);
      if (t === null) throw new OnnxFormatError(`attribute "${name}" of type TENSOR has no tensor`);
      return { name, type: "tensor", t: readTensor(t) };
    }
    case AttrType.FLOATS:
      return { name, type: "floats", floats: read.floats(f, 7) };
    case AttrType.INTS:
      return { name, type: "ints", ints: read.ints(f, 8) };
    case AttrType.STRINGS:
      return { name, type: "strings", strings: read.strings(f, 9) };
    default:
      throw new OnnxFormatError(
        `attribute "${name}" has type ${type}; graphs and sparse tensors in attributes are not supported`,
      );
  }
}

function readNode(f: ProtoFields): OnnxNode {
  return {
    name: read.string(f, 3),
    opType: read.string(f, 4),
    domain: read.string(f, 7),
    inputs: read.strings(f, 1),
    outputs: read.strings(f, 2),
    attributes: read.messages(f, 5).map(readAttribute),
  };
}

function readValueInfo(f: ProtoFields): OnnxValueInfo {
  const name = read.string(f, 1);
  const tensor = read.message(read.message(f, 2) ?? new Map(), 1);
  if (tensor === null) return { name, elemType: 0, shape: [] };
  const shape = read.message(tensor, 2);
  return {
    name,
    elemType: read.int(tensor, 1),
    shape: (shape === null ? [] : read.messages(shape, 1)).map((d) =>
      d.has(1) ? read.int(d, 1) : read.string(d, 2, "?"),
    ),
  };
}

function readGraph(f: ProtoFields): OnnxGraph {
  return {
    name: read.string(f, 2),
    nodes: read.messages(f, 1).map(readNode),
    initializers: read.messages(f, 5).map(readTensor),
    inputs: read.messages(f, 11).map(readValueInfo),
    outputs: read.messages(f, 12).map(readValueInfo),
    docString: read.string(f, 10),
  };
}

/** Parses the bytes of a .onnx file. */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  const f = decodeFields(bytes);
  const graph = read.message(f, 7);
  if (graph === null)
    throw new OnnxFormatError("the file has no graph (ModelProto.graph, field 7); is it ONNX?");
  return {
    irVersion: read.int(f, 1),
    producerName: read.string(f, 2),
    producerVersion: read.string(f, 3),
    domain: read.string(f, 4),
    modelVersion: read.int(f, 5),
    docString: read.string(f, 6),
    graph: readGraph(graph),
    opsetImports: read.messages(f, 8).map((o) => ({ domain: read.string(o, 1), version: read.int(o, 2) })),
    metadataProps: read.messages(f, 14).map((p) => ({ key: read.string(p, 1), value: read.string(p, 2) })),
  };
}

/** The attribute `name` of `node`, or undefined. */
export function attribute(node: OnnxNode, name: string): OnnxAttribute | undefined {
  return node.attributes.find((a) => a.name === name);
}
