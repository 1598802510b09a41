/**
 * wasm34: the cell loops of LatentKernel.foldWide (models/latentFilter.ts) as a WebAssembly module, emitted here
 * from code (no build step, no binary file: `latentWideWasmBytes` is a pure function of the lane count) and compiled
 * synchronously. Bit-identical to the JavaScript fold by construction:
 * - IEEE float64 add / sub / mul / div are exact in both (WebAssembly has no fused multiply-add), and Math.fround
 *   is f32.demote_f64 (f32x4.demote_f64x2_zero lane by lane) followed by the exact promotion back;
 * - SIMD (f64x2) only across basis parts: a lane is one part, and every lane receives the same operations in the
 *   same order as that part's own loop in foldWide (each sum runs over the cells in order, within its lane);
 * - every transcendental (the gap's 2^x, the logs of the normalising sums) stays in JavaScript.
 * The posteriors live part-interleaved in the module's memory (cell i of part r at i x Wp + r, Wp = W rounded up to
 * even; a padding lane repeats the last part and is never read back).
 */

/** The kernels that fold a pair's basis parts (LatentFilter.useWideKernel). */
export const LATENT_WIDE_KERNELS = ["js", "wasm"] as const;
export type LatentWideKernel = (typeof LATENT_WIDE_KERNELS)[number];

// Value types and opcodes (WebAssembly core spec 2.0, binary format, section 5.4; SIMD: the 0xFD prefix).
const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;
const VOID = 0x40;

type Code = number[];

const uleb = (n: number): Code => {
  const out: Code = [];
  let v = n >>> 0;
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
};
const sleb = (n: number): Code => {
  const out: Code = [];
  let v = n | 0;
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
};
const vec = (items: Code[]): Code => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: Code): Code => [id, ...uleb(body.length), ...body];

// Instructions: each takes its operands' code and returns the whole expression's code.
const get = (l: number): Code => [0x20, ...uleb(l)];
const set = (l: number, v: Code): Code => [...v, 0x21, ...uleb(l)];
const i32 = (n: number): Code => [0x41, ...sleb(n)];
const f64 = (x: number): Code => [0x44, ...new Uint8Array(Float64Array.of(x).buffer)];
const bin =
  (opcode: number) =>
  (a: Code, b: Code): Code => [...a, ...b, opcode];
const add = bin(0x6a);
const sub = bin(0x6b);
const mul = bin(0x6c);
const ltS = bin(0x48);
const geS = bin(0x4e);
const gtS = bin(0x4a);
const fsub = bin(0xa1);
const fmul = bin(0xa2);
const fadd = bin(0xa0);
const fle = bin(0x65);
const fgt = bin(0x64);
const ffloor = (a: Code): Code => [...a, 0x9c];
const truncS = (a: Code): Code => [...a, 0xaa];
const convS = (a: Code): Code => [...a, 0xb7];
const ldI32 = (addr: Code): Code => [...addr, 0x28, 2, 0];
const ldF64 = (addr: Code): Code => [...addr, 0x2b, 3, 0];
const stF64 = (addr: Code, v: Code): Code => [...addr, ...v, 0x39, 3, 0];
const simd = (opcode: number): Code => [0xfd, ...uleb(opcode)];
const ldV = (addr: Code, off = 0): Code => [...addr, ...simd(0x00), 4, ...uleb(off)];
const stV = (addr: Code, v: Code, off = 0): Code => [...addr, ...v, ...simd(0x0b), 4, ...uleb(off)];
const splat = (a: Code): Code => [...a, ...simd(0x14)];
const vadd = (a: Code, b: Code): Code => [...a, ...b, ...simd(0xf0)];
const vsub = (a: Code, b: Code): Code => [...a, ...b, ...simd(0xf1)];
const vmul = (a: Code, b: Code): Code => [...a, ...b, ...simd(0xf2)];
const vdiv = (a: Code, b: Code): Code => [...a, ...b, ...simd(0xf3)];
/** Math.fround per lane: demote to float32 (round to nearest even) and promote back (exact). */
const vround32 = (a: Code): Code => [...a, ...simd(0x5e), ...simd(0x5f)];
const vzero = (): Code => splat(f64(0));
const select = (a: Code, b: Code, cond: Code): Code => [...a, ...b, ...cond, 0x1b];
const iff = (cond: Code, then: Code, otherwise?: Code): Code => [
  ...cond,
  0x04,
  VOID,
  ...then,
  ...(otherwise === undefined ? [] : [0x05, ...otherwise]),
  0x0b,
];
/** memory.fill(addr, 0, bytes) (bulk memory). */
const zero = (addr: Code, bytes: Code): Code => [...addr, ...i32(0), ...bytes, 0xfc, ...uleb(11), 0];

/** The fold function's parameters, in order (i32 byte addresses or counts unless F64). */
const PARAMS = [
  ["nEv", I32],
  ["G", I32],
  ["pA", I32],
  ["pB", I32],
  ["pX", I32],
  ["pD", I32], // per event: the gap's decay d (f64; not < 1: no forgetting)
  ["pKeep", I32], // per event: the spread's kept share s d (f64)
  ["pLose", I32], // per event: the spread's lost share s (1 - d) (f64)
  ["pRow", I32], // per event: the emission row's address (i32; 0 = no emission)
  ["pLearn", I32], // per event: the kind's learning maps' address (i32; 0 = the kind does not teach)
  ["pOf", I32], // per event: the outcome's factor (i32; -1 = none)
  ["pLf", I32], // per event: the learning's factor (i32)
  ["pSum", I32], // out, per event: each lane's normalising sum (f64 x Wp)
  ["pMean", I32], // each lane's last mean (f64 x Wp)
  ["pC", I32], // contributions, factor-major (f64 x F x Wp)
  ["floor", F64],
  ["fj", I32],
  ["fw", F64],
  ["fw1", F64],
  ["glide", F64],
  ["q", F64],
  ["stay", F64],
  ["fForget", I32],
] as const;
const SCALARS = [
  ["n", I32],
  ["i", I32],
  ["a", I32],
  ["b", I32],
  ["px", I32],
  ["pr", I32],
  ["lo", I32],
  ["fb", I32],
  ["prevA", I32],
  ["nextA", I32],
  ["addr", I32],
  ["row", I32],
  ["learn", I32],
  ["src", I32],
  ["dst", I32],
  ["sw", I32],
  ["bytes", I32],
  ["gf", F64],
  ["d", F64],
  ["x", F64],
  ["pos", F64],
  ["jf", F64],
  ["mf", F64],
  ["u", F64],
  ["m", V128],
  ["gl", V128],
  ["l", V128],
  ["v", V128],
  ["xs", V128],
  ["fs", V128],
  ["vW", V128],
  ["vCW", V128],
  ["vGlide", V128],
  ["vKeep", V128],
  ["vLose", V128],
  ["vFw", V128],
  ["vFw1", V128],
  ["vQ", V128],
  ["vStay", V128],
] as const;

/**
 * The module for W2 lane pairs (Wp = 2 W2 parts): `fold` folds a sequence's events, each cell's lanes unrolled (a
 * sum per lane pair in its own local, so the pairs' chains of additions run side by side; constant offsets).
 */
export function latentWideWasmBytes(W2: number): Uint8Array {
  if (!(Number.isInteger(W2) && W2 >= 1 && W2 <= 64))
    throw new RangeError(`lane pairs must be a whole number in [1, 64] (got ${W2})`);
  const rs = W2 * 16;
  const locals: (readonly [string, number])[] = [...PARAMS, ...SCALARS];
  for (let k = 0; k < W2; k++) locals.push([`acc${k}`, V128], [`sum${k}`, V128]);
  const at = new Map(locals.map(([name], i) => [name, i]));
  const L = (name: string): number => at.get(name)!;
  const g = (name: string): Code => get(L(name));
  const s = (name: string, v: Code): Code => set(L(name), v);
  const lanes = (fn: (k: number, off: number) => Code): Code =>
    Array.from({ length: W2 }, (_, k) => fn(k, k * 16)).flat();
  /** The cells in order: `i` from 0 to G, each pointer from its start by its step. */
  const cells = (ptrs: [string, Code, number][], body: Code): Code => [
    ...ptrs.flatMap(([name, from]) => s(name, from)),
    ...s("i", i32(0)),
    0x02,
    VOID,
    0x03,
    VOID,
    ...geS(g("i"), g("G")),
    0x0d,
    1,
    ...body,
    ...ptrs.flatMap(([name, , step]) => s(name, add(g(name), i32(step)))),
    ...s("i", add(g("i"), i32(1))),
    0x0c,
    0,
    0x0b,
    0x0b,
  ];
  const accZero = lanes((k) => s(`acc${k}`, vzero()));
  /** Each lane's `acc` added to factor `f`'s contributions, then the lane's last mean set to it. */
  const track = (f: Code): Code => [
    ...s("addr", add(g("pC"), mul(f, i32(rs)))),
    ...lanes((k, off) => [
      ...stV(g("addr"), vadd(ldV(g("addr"), off), vsub(g(`acc${k}`), ldV(g("pMean"), off))), off),
      ...stV(g("pMean"), g(`acc${k}`), off),
    ]),
  ];
  const evF64 = (base: string): Code => ldF64(add(g(base), mul(g("n"), i32(8))));
  const evI32 = (base: string): Code => ldI32(add(g(base), mul(g("n"), i32(4))));
  const rmw = (addr: string, off: number, v: Code): Code => stV(g(addr), vadd(ldV(g(addr), off), v), off);

  // The forgetting of event n: per cell its move as LatentKernel.writePlan plans it, then foldWide's additions.
  const forgetting: Code = [
    ...s("vKeep", splat(evF64("pKeep"))),
    ...s("vLose", splat(evF64("pLose"))),
    ...zero(g("pB"), mul(g("G"), i32(rs))),
    ...s("fb", add(g("pB"), mul(g("fj"), i32(rs)))),
    ...cells(
      [
        ["a", g("pA"), rs],
        ["b", g("pB"), rs],
        ["px", g("pX"), 8],
      ],
      [
        ...s("x", ldF64(g("px"))),
        ...iff(
          fle(g("x"), g("floor")),
          lanes((_, off) => rmw("b", off, ldV(g("a"), off))),
          [
            ...s(
              "pos",
              fsub(fmul(fadd(g("floor"), fmul(fsub(g("x"), g("floor")), g("d"))), g("gf")), f64(0.5)),
            ),
            ...iff(
              fle(g("pos"), f64(0)),
              [...s("lo", g("pB")), ...s("vW", splat(f64(0))), ...s("vCW", splat(f64(1)))],
              [
                ...s("jf", ffloor(g("pos"))),
                ...s("lo", add(g("pB"), mul(truncS(g("jf")), i32(rs)))),
                ...s("u", fsub(g("pos"), g("jf"))),
                ...s("vW", splat(g("u"))),
                ...s("vCW", splat(fsub(f64(1), g("u")))),
              ],
            ),
            ...lanes((_, off) => [
              ...s("m", ldV(g("a"), off)),
              ...s("gl", vmul(g("m"), g("vGlide"))),
              ...rmw("lo", off, vmul(g("gl"), g("vCW"))),
              ...rmw("lo", off + rs, vmul(g("gl"), g("vW"))),
              ...rmw("b", off, vmul(g("m"), g("vKeep"))),
              ...s("l", vmul(g("m"), g("vLose"))),
              ...rmw("fb", off, vmul(g("l"), g("vFw1"))),
              ...rmw("fb", off + rs, vmul(g("l"), g("vFw"))),
            ]),
          ],
        ),
      ],
    ),
    ...accZero,
    ...cells(
      [
        ["b", g("pB"), rs],
        ["px", g("pX"), 8],
      ],
      [
        ...s("xs", splat(ldF64(g("px")))),
        ...lanes((k, off) => s(`acc${k}`, vadd(g(`acc${k}`), vmul(ldV(g("b"), off), g("xs"))))),
      ],
    ),
    ...track(g("fForget")),
    // The posteriors are in B now.
    ...s("sw", g("pA")),
    ...s("pA", g("pB")),
    ...s("pB", g("sw")),
  ];

  // The outcome of event n (`observe`): p x f with the sum in cell order, each cell over the sum, the mean.
  const observation: Code = [
    ...accZero,
    ...cells(
      [
        ["a", g("pA"), rs],
        ["pr", g("row"), 8],
      ],
      [
        ...s("fs", splat(ldF64(g("pr")))),
        ...lanes((k, off) => [
          ...s("v", vmul(ldV(g("a"), off), g("fs"))),
          ...stV(g("a"), g("v"), off),
          ...s(`acc${k}`, vadd(g(`acc${k}`), g("v"))),
        ]),
      ],
    ),
    ...s("addr", add(g("pSum"), mul(g("n"), i32(rs)))),
    ...lanes((k, off) => [...stV(g("addr"), g(`acc${k}`), off), ...s(`sum${k}`, g(`acc${k}`))]),
    ...accZero,
    ...cells(
      [
        ["a", g("pA"), rs],
        ["px", g("pX"), 8],
      ],
      [
        ...s("xs", splat(ldF64(g("px")))),
        ...lanes((k, off) => [
          ...s("v", vdiv(ldV(g("a"), off), g(`sum${k}`))),
          ...stV(g("a"), g("v"), off),
          ...s(`acc${k}`, vadd(g(`acc${k}`), vmul(g("v"), g("xs")))),
        ]),
      ],
    ),
    ...s("lo", evI32("pOf")),
    ...iff(geS(g("lo"), i32(0)), track(g("lo"))),
  ];

  // The learning of event n (`learnFrom`'s map of each lane's own kernel; scalar: lanes land on different cells),
  // A into B; the map at `learn`: per (cell, lane) the lower target's byte offset in a state (i32), then its upper
  // share (f64).
  const learning: Code = [
    ...s("bytes", mul(g("G"), i32(rs))),
    ...zero(g("pB"), g("bytes")),
    ...s("addr", add(g("learn"), [...g("bytes"), ...i32(1), 0x76])),
    ...s("i", i32(0)),
    0x02,
    VOID,
    0x03,
    VOID,
    ...geS(g("i"), g("bytes")),
    0x0d,
    1,
    ...s("mf", ldF64(add(g("pA"), g("i")))),
    ...s("lo", add(g("pB"), ldI32(add(g("learn"), [...g("i"), ...i32(1), 0x76])))),
    ...s("u", ldF64(add(g("addr"), g("i")))),
    ...stF64(g("lo"), fadd(ldF64(g("lo")), fmul(g("mf"), fsub(f64(1), g("u"))))),
    ...s("lo", add(g("lo"), i32(rs))),
    ...stF64(g("lo"), fadd(ldF64(g("lo")), fmul(g("mf"), g("u")))),
    ...s("i", add(g("i"), i32(8))),
    0x0c,
    0,
    0x0b,
    0x0b,
  ];

  // The noise, src into dst, rounded to float32, with each lane's mean (learnFrom's round32 loops).
  const noisePtrs: [string, Code, number][] = [
    ["a", g("src"), rs],
    ["b", g("dst"), rs],
    ["px", g("pX"), 8],
  ];
  const noise: Code = [
    ...accZero,
    ...iff(
      fgt(g("q"), f64(0)),
      cells(noisePtrs, [
        ...s("xs", splat(ldF64(g("px")))),
        ...s("prevA", select(sub(g("a"), i32(rs)), g("a"), gtS(g("i"), i32(0)))),
        ...s("nextA", select(add(g("a"), i32(rs)), g("a"), ltS(add(g("i"), i32(1)), g("G")))),
        ...lanes((k, off) => [
          ...s(
            "v",
            vround32(
              vadd(
                vadd(vmul(ldV(g("a"), off), g("vStay")), vmul(g("vQ"), ldV(g("prevA"), off))),
                vmul(g("vQ"), ldV(g("nextA"), off)),
              ),
            ),
          ),
          ...stV(g("b"), g("v"), off),
          ...s(`acc${k}`, vadd(g(`acc${k}`), vmul(g("v"), g("xs")))),
        ]),
      ]),
      cells(noisePtrs, [
        ...s("xs", splat(ldF64(g("px")))),
        ...lanes((k, off) => [
          ...s("v", vround32(ldV(g("a"), off))),
          ...stV(g("b"), g("v"), off),
          ...s(`acc${k}`, vadd(g(`acc${k}`), vmul(g("v"), g("xs")))),
        ]),
      ]),
    ),
    ...track(evI32("pLf")),
  ];

  const body: Code = [
    ...s("gf", convS(g("G"))),
    ...s("vGlide", splat(g("glide"))),
    ...s("vFw", splat(g("fw"))),
    ...s("vFw1", splat(g("fw1"))),
    ...s("vQ", splat(g("q"))),
    ...s("vStay", splat(g("stay"))),
    ...s("n", i32(0)),
    0x02,
    VOID,
    0x03,
    VOID,
    ...geS(g("n"), g("nEv")),
    0x0d,
    1,
    ...s("d", evF64("pD")),
    ...iff(fgt(f64(1), g("d")), forgetting),
    ...s("row", evI32("pRow")),
    ...iff(g("row"), observation),
    ...s("learn", evI32("pLearn")),
    ...iff(
      g("learn"),
      [...learning, ...s("src", g("pB")), ...s("dst", g("pA"))],
      [...s("src", g("pA")), ...s("dst", g("pB"))],
    ),
    ...noise,
    // Without learning the noise wrote the posteriors into B: they become A.
    ...iff([...g("learn"), 0x45], [...s("sw", g("pA")), ...s("pA", g("pB")), ...s("pB", g("sw"))]),
    ...s("n", add(g("n"), i32(1))),
    0x0c,
    0,
    0x0b,
    0x0b,
    ...g("pA"),
  ];

  const funcType: Code = [0x60, ...vec(PARAMS.map(([, t]) => [t])), ...vec([[I32]])];
  const fn: Code = [...vec(locals.slice(PARAMS.length).map(([, t]) => [1, t])), ...body, 0x0b];
  const name = (text: string): Code => vec([...text].map((c) => [c.charCodeAt(0)]));
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec([funcType])),
    // The memory is the caller's (one for every module of a LatentWideWasm).
    ...section(2, vec([[...name("env"), ...name("memory"), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec([uleb(0)])),
    ...section(7, vec([[...name("fold"), 0x00, 0]])),
    ...section(10, vec([[...uleb(fn.length), ...fn]])),
  ]);
}

/** The fold function's signature (PARAMS' order). */
type FoldFn = (...args: number[]) => number;

/** Tables kept per key beyond this many bytes are dropped together (a new set is built on the next fold). */
const TABLE_BYTES_LIMIT = 16 << 20;
const PAGE = 65536;

/** The compiled modules by lane pairs (immutable; compiled once per process and width). */
const modules = new Map<number, object>();

/**
 * The modules' instances over one memory (one per LatentFilter that folds with it): per key (a WideKernels) the
 * tables its folds read, kept at the bottom of the memory; each fold's scratch above them.
 */
export class LatentWideWasm {
  private readonly memory: { buffer: ArrayBuffer; grow(pages: number): number };
  private readonly folds = new Map<number, FoldFn>();
  f64: Float64Array;
  i32: Int32Array;
  private readonly tables = new Map<object, number>();
  private top = 16;

  constructor() {
    this.memory = new (wasmApi().Memory)({ initial: 4 });
    this.f64 = new Float64Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
  }

  /** The fold of W2 lane pairs (PARAMS' order; returns the posteriors' address). */
  foldOf(W2: number): FoldFn {
    let fold = this.folds.get(W2);
    if (fold === undefined) {
      const api = wasmApi();
      let module = modules.get(W2);
      if (module === undefined) {
        module = new api.Module(latentWideWasmBytes(W2));
        modules.set(W2, module);
      }
      fold = new api.Instance(module, { env: { memory: this.memory } }).exports.fold as FoldFn;
      this.folds.set(W2, fold);
    }
    return fold;
  }

  /** The address of `key`'s tables (`addTables`), or -1. */
  tablesAt(key: object): number {
    return this.tables.get(key) ?? -1;
  }

  /** Room for `bytes` of `key`'s tables (the caller writes them before the next call): its address. */
  addTables(key: object, bytes: number): number {
    if (this.top + bytes > TABLE_BYTES_LIMIT) {
      this.tables.clear();
      this.top = 16;
    }
    const at = this.top;
    this.top = align16(at + bytes);
    this.reserve(this.top);
    this.tables.set(key, at);
    return at;
  }

  /** The address of `bytes` of scratch above the tables (valid until the next `tablesOf`). */
  scratch(bytes: number): number {
    this.reserve(this.top + bytes);
    return this.top;
  }

  private reserve(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    this.memory.grow(Math.ceil((end - have) / PAGE));
    this.f64 = new Float64Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
  }
}

export const align16 = (n: number): number => (n + 15) & ~15;

/** The part of the WebAssembly JS API used here (the project's lib is ES2023, without the DOM's declarations). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (limits: { initial: number }) => { buffer: ArrayBuffer; grow(pages: number): number };
  validate(bytes: Uint8Array): boolean;
}
const wasmApi = (): WasmApi => (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
