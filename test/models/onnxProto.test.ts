/**
 * The protobuf/ONNX layer: known wire bytes from the protobuf encoding guide, a write/read round trip of a
 * whole model (fast-check), and the float32 threshold rounding that keeps exported trees routing like ours.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DataType, decodeModel, encodeModel, type OnnxModel } from "../../models/onnx/onnxProto.ts";
import { decodeFields, ProtoWriter, read } from "../../models/onnx/protobuf.ts";
import { ceilFloat32, nextFloat32Up } from "../../models/onnx/treeEnsembleOnnx.ts";

describe("protobuf wire format", () => {
  it("encodes varints as in the protobuf guide (150 -> 96 01, -1 -> ten bytes)", () => {
    const w = new ProtoWriter();
    w.intField(1, 150);
    expect(Array.from(w.finish())).toEqual([0x08, 0x96, 0x01]);
    const neg = new ProtoWriter();
    neg.varint(-1);
    expect(Array.from(neg.finish())).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  });

  it("reads back int64 (incl. negative and > 2^49), floats, strings, packed and unpacked repeats", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), { maxLength: 20 }),
        fc.array(fc.float({ noNaN: true }), { maxLength: 20 }),
        fc.string(),
        (ints, floats, s) => {
          const w = new ProtoWriter();
          for (const i of ints) w.intField(1, i);
          w.packedInts(2, ints);
          for (const f of floats) w.floatField(3, f);
          w.stringField(4, s);
          const f = decodeFields(w.finish());
          expect(read.ints(f, 1)).toEqual(ints);
          expect(read.ints(f, 2)).toEqual(ints);
          expect(read.floats(f, 3)).toEqual(floats.map(Math.fround));
          expect(read.string(f, 4)).toBe(s);
        },
      ),
    );
  });
});

describe("ONNX model round trip", () => {
  it("decode(encode(model)) returns the model", () => {
    const model: OnnxModel = {
      irVersion: 8,
      producerName: "test",
      producerVersion: "1",
      domain: "",
      modelVersion: 3,
      docString: "doc",
      graph: {
        name: "g",
        nodes: [
          {
            name: "n0",
            opType: "TreeEnsembleRegressor",
            domain: "ai.onnx.ml",
            inputs: ["input"],
            outputs: ["y"],
            attributes: [
              { name: "f", type: "float", f: 0.5 },
              { name: "i", type: "int", i: -7 },
              { name: "s", type: "string", s: "BRANCH_LT" },
              { name: "fs", type: "floats", floats: [1.5, -2.25] },
              { name: "is", type: "ints", ints: [0, 5, -1] },
              { name: "ss", type: "strings", strings: ["LEAF", "BRANCH_LT"] },
              {
                name: "t",
                type: "tensor",
                t: { name: "", dims: [2], dataType: DataType.DOUBLE, data: Float64Array.from([0.1, 1e-300]) },
              },
            ],
          },
        ],
        initializers: [
          { name: "w", dims: [2, 2], dataType: DataType.FLOAT, data: Float32Array.from([1, 2, 3, 4]) },
          { name: "k", dims: [2], dataType: DataType.INT64, data: [1, -2] },
          { name: "m", dims: [3], dataType: DataType.BOOL, data: Uint8Array.from([1, 0, 1]) },
        ],
        inputs: [{ name: "input", elemType: DataType.FLOAT, shape: ["N", 4] }],
        outputs: [{ name: "y", elemType: DataType.FLOAT, shape: ["N", 1] }],
        docString: "",
      },
      opsetImports: [
        { domain: "", version: 17 },
        { domain: "ai.onnx.ml", version: 3 },
      ],
      metadataProps: [{ key: "a", value: "b" }],
    };
    const back = decodeModel(encodeModel(model));
    expect(back).toEqual({
      ...model,
      graph: {
        ...model.graph,
        nodes: [
          {
            ...model.graph.nodes[0]!,
            attributes: model.graph.nodes[0]!.attributes.map((a) => {
              if (a.type === "floats") return { ...a, floats: Array.from(a.floats) };
              if (a.type === "ints") return { ...a, ints: Array.from(a.ints) };
              return a;
            }),
          },
        ],
      },
    });
  });
});

describe("float32 threshold rounding", () => {
  it("for every float32 x, x < t <=> x < ceilFloat32(t)", () => {
    fc.assert(
      fc.property(
        fc.double({ min: -1e6, max: 1e6, noNaN: true }),
        fc.float({ min: -1e6, max: 1e6, noNaN: true }),
        (t, x) => {
          const t32 = ceilFloat32(t);
          expect(Math.fround(t32)).toBe(t32);
          expect(x < t).toBe(x < t32);
          // the float32 neighbours of t, where a naive rounding would flip
          for (const v of [Math.fround(t), nextFloat32Up(Math.fround(t))]) expect(v < t).toBe(v < t32);
        },
      ),
    );
    expect(nextFloat32Up(1)).toBe(1 + 2 ** -23);
    // fround(0.7) = 0.699999988... < 0.7: nearest rounding would send x = fround(0.7) right; ceil keeps it left.
    const x = Math.fround(0.7);
    expect(x < 0.7 && !(x < Math.fround(0.7))).toBe(true);
    expect(ceilFloat32(0.7)).toBe(0.7000000476837158);
    expect(x < ceilFloat32(0.7)).toBe(true);
  });
});
