import { type StudentMastery, storedExplanationText, type TopicMastery } from "./masteryView.ts";

/**
 * The GET /mastery body of a view, as text: the same characters as JSON.stringify(view) (a fast-check
 * property checks it), written directly. On a cache miss of a 100-topic student most of the body is
 * per-topic fields and explanations; this writes the fields in their known order without walking
 * generic objects, formats the experiment arm once per body, and splices each explanation's stored
 * text as it is instead of parsing it and writing it back (storedExplanationText), when that text is
 * in JSON.stringify's own form (see canonicalLooking).
 */
export function masteryViewJson(view: StudentMastery): string {
  const armJson = new Map<unknown, string>();
  const parts: string[] = [];
  for (const t of view.topics) parts.push(topicJson(t, armJson));
  const servedModel =
    view.servedModel !== undefined ? `,"servedModel":${JSON.stringify(view.servedModel)}` : "";
  return `{"studentKey":${str(view.studentKey)},"topics":[${parts.join(",")}],"rollups":${JSON.stringify(view.rollups)}${servedModel}}`;
}

function topicJson(t: TopicMastery, armJson: Map<unknown, string>): string {
  let arm = armJson.get(t.experimentArm);
  if (arm === undefined) {
    arm = JSON.stringify(t.experimentArm);
    armJson.set(t.experimentArm, arm);
  }
  const stored = storedExplanationText(t);
  const explanation =
    stored !== undefined && canonicalLooking(stored) ? stored : JSON.stringify(t.explanation);
  let out =
    `{"topicId":${str(t.topicId)},"name":${strOrNull(t.name)},"chapterId":${strOrNull(t.chapterId)}` +
    `,"subjectId":${strOrNull(t.subjectId)},"courseId":${strOrNull(t.courseId)},"score":${num(t.score)}` +
    `,"scoreSource":${str(t.scoreSource)},"modelVersion":${str(t.modelVersion)},"asOf":${str(t.asOf)}` +
    `,"lastUpdated":${str(t.lastUpdated)},"explanation":${explanation}` +
    `,"interval":${JSON.stringify(t.interval)},"evidence":${JSON.stringify(t.evidence)}` +
    `,"pCorrect":${t.pCorrect === null ? "null" : num(t.pCorrect)},"experimentArm":${arm},"scores":{`;
  let first = true;
  for (const source in t.scores) {
    const s = t.scores[source] as TopicMastery["scores"][string];
    out +=
      `${first ? "" : ","}${str(source)}:{"score":${num(s.score)},"modelVersion":${str(s.modelVersion)}` +
      `,"asOf":${str(s.asOf)}}`;
    first = false;
  }
  out += "}";
  if (t.model !== undefined) out += `,"model":${JSON.stringify(t.model)}`;
  return `${out}}`;
}

// Strings of the body are ids, names and ISO times: most need no escaping, and JSON.stringify of a
// string is `"` + the string + `"` exactly when none of these occurs.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
const str = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);
const strOrNull = (s: string | null): string => (s === null ? "null" : str(s));
/** JSON.stringify of a number: its shortest round-trip form, null when not finite. */
const num = (x: number): string => (Number.isFinite(x) ? String(x) : "null");

/**
 * Stored explanations are written by JSON.stringify (the scorers, the updater, teacher corrections), so
 * their text is what JSON.stringify(JSON.parse(text)) gives. A text with whitespace between tokens
 * (written by hand, or pretty-printed) is not spliced but parsed and written back as before; whitespace
 * inside a string value (a factor named with a space) only costs that fallback.
 */
const canonicalLooking = (text: string): boolean => !/\s/.test(text);
