import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

/**
 * Content-addressed storage of model artifact files: a file is stored once under its sha256, whatever
 * model version or path refers to it. The registry tables (model_artifacts) map a version's relative
 * paths to hashes; this store only knows hashes.
 *
 * Implementations: LocalArtifactStore (a directory, .mastery/artifacts by default). An S3-compatible
 * store is an interface-level extension point only: implement ArtifactStore over your S3 client with
 * keys `${base}/sha256/${hash.slice(0, 2)}/${hash}`; nothing here talks to S3.
 */
export interface ArtifactStore {
  /** Where blobs live (a directory or a URI), for messages and `models show`. */
  readonly base: string;
  /** Stores the file at `localPath` (no-op if that content is already stored); returns its hash and size. */
  put(localPath: string): Promise<{ sha256: string; sizeBytes: number }>;
  /** Copies the blob `sha256` to `destPath` (parent directories created), verifying its hash. */
  get(sha256: string, destPath: string): Promise<void>;
  has(sha256: string): Promise<boolean>;
  /** Removes the blob; a missing blob is not an error. */
  delete(sha256: string): Promise<void>;
  /** The blob's location, e.g. /abs/.mastery/artifacts/sha256/ab/ab12... */
  uri(sha256: string): string;
}

export class ArtifactError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ArtifactError";
  }
}

export function sha256File(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

const HASH = /^[0-9a-f]{64}$/;

export class LocalArtifactStore implements ArtifactStore {
  readonly base: string;

  constructor(base = ".mastery/artifacts") {
    this.base = resolve(base);
  }

  uri(sha256: string): string {
    if (!HASH.test(sha256))
      throw new ArtifactError(
        "ARTIFACT_HASH",
        `"${sha256}" is not a sha256 hex digest (64 lower-case hex digits)`,
      );
    return join(this.base, "sha256", sha256.slice(0, 2), sha256);
  }

  async put(localPath: string): Promise<{ sha256: string; sizeBytes: number }> {
    const sha256 = sha256File(localPath);
    const sizeBytes = statSync(localPath).size;
    const dest = this.uri(sha256);
    if (!existsSync(dest)) {
      mkdirSync(dirname(dest), { recursive: true });
      // Copy then rename: a crash mid-copy never leaves a truncated blob under a valid hash.
      const tmp = `${dest}.tmp-${process.pid}`;
      copyFileSync(localPath, tmp);
      renameSync(tmp, dest);
    }
    return { sha256, sizeBytes };
  }

  async get(sha256: string, destPath: string): Promise<void> {
    const src = this.uri(sha256);
    if (!existsSync(src))
      throw new ArtifactError(
        "ARTIFACT_MISSING",
        `artifact ${sha256} is not in ${this.base}; the registry row points at a blob that was removed by hand (re-register the version)`,
      );
    mkdirSync(dirname(destPath), { recursive: true });
    copyFileSync(src, destPath);
    const got = sha256File(destPath);
    if (got !== sha256)
      throw new ArtifactError(
        "ARTIFACT_CORRUPT",
        `artifact ${src} has sha256 ${got}, expected ${sha256}; the blob is corrupt`,
      );
  }

  async has(sha256: string): Promise<boolean> {
    return existsSync(this.uri(sha256));
  }

  async delete(sha256: string): Promise<void> {
    rmSync(this.uri(sha256), { force: true });
  }
}

/**
 * The artifact store for a base location: a local directory, or an error for s3:// (see the
 * ArtifactStore doc: S3 is an interface, not an implementation, in this codebase).
 */
export function artifactStoreFor(base: string): ArtifactStore {
  if (/^s3:\/\//i.test(base))
    throw new ArtifactError(
      "ARTIFACT_S3",
      `artifact base ${base}: no S3 client is built in; implement the ArtifactStore interface (registry/artifacts.ts) over your S3 SDK, or use a local directory`,
    );
  return new LocalArtifactStore(base);
}

/** Files under `dir`, recursively, as paths relative to `dir` with "/" separators, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) out.push(relative(dir, full).split(sep).join("/"));
    }
  };
  walk(dir);
  return out.sort();
}
