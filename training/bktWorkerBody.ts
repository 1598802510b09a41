import { parentPort, workerData } from "node:worker_threads";
import { type BktOptions, EmScratch, fitRestart, type SkillSequences } from "../models/bkt.ts";
import type { BktJob, BktJobResult, BktWorkerData } from "./bktFit.ts";

// Runs (skill, restart) EM jobs on the shared, read-only observation arrays sent once at start-up.
const init = workerData as BktWorkerData;
const data: SkillSequences = {
  skillNames: init.skillNames,
  obs: init.obs,
  seqStart: init.seqStart,
  skillSeq: init.skillSeq,
};
const options: BktOptions = init.options;
const scratch = new EmScratch(init.maxSkillRows);

parentPort?.on("message", (job: BktJob) => {
  const result: BktJobResult = {
    skill: job.skill,
    fit: fitRestart(data, job.skill, job.restart, options, scratch),
  };
  parentPort?.postMessage(result);
});
parentPort?.postMessage("ready");
