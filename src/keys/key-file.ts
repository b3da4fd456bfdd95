import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { z } from 'zod';

/**
 * One signing key per file, `<kid>.json`, owner-only (0600). The schedule is data in the file, so every
 * instance reading the same directory makes the same decision at the same moment:
 * - published from `publishAt` (it appears in the JWKS),
 * - signs from `activatesAt` (after every cached JWKS has had time to pick it up),
 * - stops signing at `retiresAt`, but stays published until `expiresAt` (every token it signed is dead).
 */
export const keyFileSchema = z.strictObject({
  kid: z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 hex digits (the key thumbprint)'),
  alg: z.literal('RS256'),
  createdAt: z.iso.datetime(),
  publishAt: z.iso.datetime(),
  activatesAt: z.iso.datetime(),
  retiresAt: z.iso.datetime().nullable(),
  expiresAt: z.iso.datetime().nullable(),
  /** Set by `keys revoke`: the key left the JWKS at this moment, ahead of schedule. */
  revokedAt: z.iso.datetime().nullable().optional(),
  privateKey: z.string().startsWith('-----BEGIN PRIVATE KEY-----'),
});

export type KeyFile = z.infer<typeof keyFileSchema>;

export interface LoadedKey {
  kid: string;
  file: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: PublicJwk;
  publishAt: number;
  activatesAt: number;
  retiresAt: number | null;
  expiresAt: number | null;
  revokedAt: number | null;
  /** The file as read, for tools that rewrite its schedule. */
  data: KeyFile;
}

/** The only members a public JWK may carry (allow-list, never a copy of the private JWK minus some). */
export interface PublicJwk {
  kty: 'RSA';
  n: string;
  e: string;
  kid: string;
  alg: 'RS256';
  use: 'sig';
}

const generate = promisify(generateKeyPair);

/**
 * The kid: the RFC 7638 thumbprint of the public key, hex-encoded and cut to 128 bits. Derived, so it can
 * be checked against the key; hex, so it never starts with '-' and is safe as a file name and CLI argument.
 */
async function kidFor(jwk: JWK): Promise<string> {
  const thumbprint = await calculateJwkThumbprint({ kty: 'RSA', n: jwk.n, e: jwk.e }, 'sha256');
  return Buffer.from(thumbprint, 'base64url').toString('hex').slice(0, 32);
}

export async function generateKeyFile(
  now: Date,
  opts: { bits?: number; publishAt?: Date; activatesAt?: Date } = {},
): Promise<KeyFile> {
  const { privateKey } = await generate('rsa', { modulusLength: opts.bits ?? 2048, publicExponent: 0x10001 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
  const kid = await kidFor(jwk);
  return {
    kid,
    alg: 'RS256',
    createdAt: now.toISOString(),
    publishAt: (opts.publishAt ?? now).toISOString(),
    activatesAt: (opts.activatesAt ?? now).toISOString(),
    retiresAt: null,
    expiresAt: null,
    privateKey: pem,
  };
}

/**
 * Writes atomically (temp file, then rename) with mode 0600 from the first byte, so a reader never sees
 * half a key. `name` defaults to `<kid>.json`; pass the existing file name when rewriting a schedule.
 */
export async function writeKeyFile(dir: string, key: KeyFile, name = `${key.kid}.json`): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, name);
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(key, null, 2)}\n`);
  } finally {
    await fh.close();
  }
  await chmod(tmp, 0o600);
  await rename(tmp, path);
  return path;
}

/** Parses and validates a key file. Throws an Error naming the file and the problem, never the key. */
export async function readKeyFile(path: string): Promise<LoadedKey> {
  let parsed: KeyFile;
  try {
    parsed = keyFileSchema.parse(JSON.parse(await readFile(path, 'utf8')));
  } catch (err) {
    const why = err instanceof z.ZodError ? err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (err as Error).message;
    throw new Error(`${path}: ${why.replace(/-----BEGIN[\s\S]*?-----END[^-]*-----/g, '[key]')}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(parsed.privateKey);
  } catch {
    throw new Error(`${path}: privateKey is not a readable PKCS#8 PEM key`);
  }
  if (privateKey.asymmetricKeyType !== 'rsa' || (privateKey.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
    throw new Error(`${path}: privateKey must be an RSA key of at least 2048 bits`);
  }
  const publicKey = createPublicKey(privateKey);
  const jwk = publicKey.export({ format: 'jwk' }) as JWK;
  const kid = await kidFor(jwk);
  if (kid !== parsed.kid) throw new Error(`${path}: kid does not match the key's thumbprint`);
  const time = (s: string | null) => (s === null ? null : Date.parse(s));
  return {
    kid,
    file: path,
    privateKey,
    publicKey,
    publicJwk: { kty: 'RSA', n: String(jwk.n), e: String(jwk.e), kid, alg: 'RS256', use: 'sig' },
    publishAt: Date.parse(parsed.publishAt),
    activatesAt: Date.parse(parsed.activatesAt),
    retiresAt: time(parsed.retiresAt),
    expiresAt: time(parsed.expiresAt),
    revokedAt: time(parsed.revokedAt ?? null),
    data: parsed,
  };
}
