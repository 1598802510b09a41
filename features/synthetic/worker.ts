/** Worker thread body for generateSynthetic: simulates the blocks it is sent and returns encoded chunks. */

import { parentPort, workerData } from "node:worker_threads";
import { StudentSimulator } from "../../models/simulation.ts";
import { CsvChunkSink } from "./csvSink.ts";
import { type GenerateOptions, generateBlock, setupSynthetic } from "./generate.ts";

const setup = setupSynthetic({ ...(workerData as Omit<GenerateOptions, "outDir">), outDir: "" });
const simulator = new StudentSimulator(setup.params, setup.curriculum, setup.cohort);
const sink = new CsvChunkSink(setup.tables);
const port = parentPort!;

port.on("message", (m: { block: number; from: number; to: number }) => {
  const { chunks, counts } = generateBlock(simulator, sink, m.from, m.to);
  // Each chunk owns its ArrayBuffer, so it is transferred to the main thread, not copied.
  const transfer = Object.values(chunks).map((b) => b.buffer as ArrayBuffer);
  port.postMessage({ block: m.block, chunks, counts }, transfer);
});
