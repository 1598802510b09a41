// Worker bootstrap: registers the tsx loader inside the thread (loaders registered in the main
// thread are not inherited), then loads the TypeScript worker body.
import { register } from "tsx/esm/api";

register();
await import("./servedBatchWorker.ts");
