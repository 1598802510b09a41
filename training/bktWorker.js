// Worker-thread entry for training/bktFit.ts. Workers do not inherit the parent's tsx loader, so this
// small JavaScript bootstrap registers tsx before loading the TypeScript worker body.
import { register } from "tsx/esm/api";

register();
await import("./bktWorkerBody.ts");
