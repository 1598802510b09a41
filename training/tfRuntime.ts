/**
 * The tfjs runtime for MLP training (a process resource, so not in models/): loads tfjs once per
 * backend and passes it to MlpRegressor.fit(X, y, { tf: await loadTf() }).
 */
import type { TfHandle } from "../models/mlp.ts";

export type { TfHandle };

const tfHandles = new Map<string, Promise<TfHandle>>();

/**
 * Loads tfjs once and selects a backend. The WASM binaries are read from the installed
 * @tensorflow/tfjs-backend-wasm package (a file path), never fetched; if WASM cannot start, 'cpu' is used
 * and the reason is recorded in the training log.
 */
export async function loadTf(preferred: "wasm" | "cpu" = "wasm"): Promise<TfHandle> {
  let h = tfHandles.get(preferred);
  if (h === undefined) {
    h = initTf(preferred);
    tfHandles.set(preferred, h);
  }
  const handle = await h;
  // The active backend is global to tfjs: re-select ours in case a call for the other backend switched it.
  if (handle.tf.getBackend() !== handle.backend) await handle.tf.setBackend(handle.backend);
  return handle;
}

async function initTf(preferred: "wasm" | "cpu"): Promise<TfHandle> {
  const tf = await import("@tensorflow/tfjs");
  let note: string | null = null;
  if (preferred === "wasm") {
    try {
      const wasm = await import("@tensorflow/tfjs-backend-wasm");
      const { createRequire } = await import("node:module");
      const { dirname, join } = await import("node:path");
      const require = createRequire(import.meta.url);
      const dist = join(dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "dist");
      wasm.setWasmPaths(`${dist}/`);
      if (await tf.setBackend("wasm")) {
        await tf.ready();
        return { tf, backend: "wasm", note };
      }
      note = "tf.setBackend('wasm') returned false";
    } catch (e) {
      note = `wasm backend failed to initialise: ${(e as Error).message}`;
    }
  }
  await tf.setBackend("cpu");
  await tf.ready();
  return { tf, backend: "cpu", note };
}
