/**
 * TLS to the services, chosen by URL (documented in docs/runbook.md, "Encryption and access"):
 *
 * - PostgreSQL: libpq-style parameters in MASTERY_PG_URL, handled by node-postgres itself, e.g.
 *   postgres://app@db:5432/mastery?sslmode=verify-full&sslrootcert=/etc/mastery/ca.crt
 *   (sslcert/sslkey for client certificates). Nothing to do here.
 * - Redis: a rediss:// URL turns TLS on; MASTERY_REDIS_CA names the CA file (else the system CAs),
 *   MASTERY_REDIS_TLS_CERT / MASTERY_REDIS_TLS_KEY a client certificate.
 * - NATS: a tls:// URL, or MASTERY_NATS_CA, requires TLS; MASTERY_NATS_CA names the CA file,
 *   MASTERY_NATS_TLS_CERT / MASTERY_NATS_TLS_KEY a client certificate.
 *
 * A CA or certificate configured for a plain redis:// URL is refused rather than silently unused.
 */
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import { StorageError } from "./duckdb.ts";

export const REDIS_CA_ENV = "MASTERY_REDIS_CA";
export const REDIS_CERT_ENV = "MASTERY_REDIS_TLS_CERT";
export const REDIS_KEY_ENV = "MASTERY_REDIS_TLS_KEY";
export const NATS_CA_ENV = "MASTERY_NATS_CA";
export const NATS_CERT_ENV = "MASTERY_NATS_TLS_CERT";
export const NATS_KEY_ENV = "MASTERY_NATS_TLS_KEY";

const set = (v: string | undefined): string | undefined => (v === undefined || v === "" ? undefined : v);

function pem(path: string, variable: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new StorageError("TLS_FILE", `${variable}: cannot read ${path}: ${(err as Error).message}`);
  }
}

function pairCheck(cert: string | undefined, key: string | undefined, certVar: string, keyVar: string): void {
  if ((cert === undefined) !== (key === undefined))
    throw new StorageError(
      "TLS_FILE",
      `set both ${certVar} and ${keyVar} for a client certificate, or neither`,
    );
}

/** The ioredis options for `url`: `{ tls }` for rediss:// (CA and client certificate from the env), else {}. */
export function redisTlsOptions(
  url: string,
  env: NodeJS.ProcessEnv = process.env,
): { tls?: ConnectionOptions } {
  const ca = set(env[REDIS_CA_ENV]);
  const cert = set(env[REDIS_CERT_ENV]);
  const key = set(env[REDIS_KEY_ENV]);
  if (!/^rediss:\/\//i.test(url)) {
    const configured = [ca && REDIS_CA_ENV, cert && REDIS_CERT_ENV].filter(Boolean);
    if (configured.length > 0)
      throw new StorageError(
        "TLS_CONFIG",
        `${configured.join(" and ")} set but the Redis URL is not rediss://: use rediss://host:port to connect with TLS`,
      );
    return {};
  }
  pairCheck(cert, key, REDIS_CERT_ENV, REDIS_KEY_ENV);
  const tls: ConnectionOptions = {};
  if (ca !== undefined) tls.ca = pem(ca, REDIS_CA_ENV);
  if (cert !== undefined && key !== undefined) {
    tls.cert = pem(cert, REDIS_CERT_ENV);
    tls.key = pem(key, REDIS_KEY_ENV);
  }
  return { tls };
}

export interface NatsTlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/**
 * The nats.js `tls` option for `url`: required TLS (with the CA / client certificate files) for a
 * tls:// URL or when MASTERY_NATS_CA is set, else {} (the server's choice). Files are checked here
 * so a wrong path fails with the variable's name.
 */
export function natsTlsOptions(url: string, env: NodeJS.ProcessEnv = process.env): { tls?: NatsTlsFiles } {
  const caFile = set(env[NATS_CA_ENV]);
  const certFile = set(env[NATS_CERT_ENV]);
  const keyFile = set(env[NATS_KEY_ENV]);
  pairCheck(certFile, keyFile, NATS_CERT_ENV, NATS_KEY_ENV);
  const wanted = /^tls:\/\//i.test(url) || caFile !== undefined || certFile !== undefined;
  if (!wanted) return {};
  const tls: NatsTlsFiles = {};
  if (caFile !== undefined) {
    pem(caFile, NATS_CA_ENV);
    tls.caFile = caFile;
  }
  if (certFile !== undefined && keyFile !== undefined) {
    pem(certFile, NATS_CERT_ENV);
    pem(keyFile, NATS_KEY_ENV);
    tls.certFile = certFile;
    tls.keyFile = keyFile;
  }
  return { tls };
}
