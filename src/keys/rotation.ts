import { unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { generateKeyFile, writeKeyFile, type KeyFile, type LoadedKey } from './key-file.js';

/**
 * Staged key rotation. Every change is a rewrite of key files; running instances pick it up by
 * re-reading the folder, and all of them reach the same decision because the schedule is in the files.
 *
 *   rotate:       new key published now, signs from now + activation delay (every cached JWKS has it by
 *                 then); the old key stops signing at that moment and stays published until every token it
 *                 signed has expired (retirement + token lifetime).
 *   rotate --now: the new key signs at once (emergency: a resource server with a stale JWKS that does
 *                 not refetch on an unknown kid rejects new tokens until its cache expires).
 *   revoke:       the key leaves the JWKS at once; tokens it signed stop verifying.
 */

export type KeyState = 'pending' | 'signing' | 'retired' | 'expired' | 'revoked';

export interface RotationTimes {
  /** Publication to activation: at least the longest time a resource server may cache the JWKS. */
  activationDelayMs: number;
  /** How long a retired key stays published: access-token lifetime + clock skew + a margin. */
  retentionMs: number;
}

export function keyState(key: LoadedKey, now: number, signerKid: string | undefined): KeyState {
  if (key.revokedAt !== null && key.revokedAt <= now) return 'revoked';
  if (key.expiresAt !== null && key.expiresAt <= now) return 'expired';
  if (key.kid === signerKid) return 'signing';
  if (key.activatesAt > now) return 'pending';
  return 'retired';
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The keys that sign now or are scheduled to: the ones a rotation retires. */
function liveSigners(keys: LoadedKey[], now: number): LoadedKey[] {
  return keys.filter(
    (k) => (k.expiresAt === null || k.expiresAt > now) && (k.retiresAt === null || k.retiresAt > now) && k.revokedAt === null,
  );
}

export class RotationError extends Error {}

export async function generateFirstKey(dir: string, keys: LoadedKey[], now: number, bits: number): Promise<string> {
  if (liveSigners(keys, now).length > 0) {
    throw new RotationError('a signing key already exists; use "keys rotate" to replace it');
  }
  return writeKeyFile(dir, await generateKeyFile(new Date(now), { bits }));
}

export interface RotationResult {
  created: KeyFile;
  path: string;
  retired: Array<{ kid: string; retiresAt: string; expiresAt: string }>;
}

/**
 * Writes the new key first (published, not yet signing), then retires the old ones. A crash in between
 * leaves a consistent schedule: the most recently activated key signs, so the new key still takes over.
 */
export async function rotate(
  dir: string,
  keys: LoadedKey[],
  now: number,
  opts: RotationTimes & { bits: number; immediate: boolean },
): Promise<RotationResult> {
  const live = liveSigners(keys, now);
  const pending = live.find((k) => k.activatesAt > now);
  if (pending && !opts.immediate) {
    throw new RotationError(`key ${pending.kid} is already scheduled to sign at ${iso(pending.activatesAt)}; wait, or use --now`);
  }
  const activatesAt = opts.immediate ? now : now + opts.activationDelayMs;
  const created = await generateKeyFile(new Date(now), { bits: opts.bits, activatesAt: new Date(activatesAt) });
  const path = await writeKeyFile(dir, created);
  const retired = [];
  for (const old of live) {
    // A key that never signed can go at once; one that signed stays until its tokens have expired.
    const signedAnything = old.activatesAt <= now;
    const retiresAt = signedAnything ? activatesAt : now;
    const expiresAt = signedAnything ? activatesAt + opts.retentionMs : now;
    const data = { ...old.data, retiresAt: iso(retiresAt), expiresAt: iso(expiresAt) };
    await writeKeyFile(dir, data, basename(old.file));
    retired.push({ kid: old.kid, retiresAt: data.retiresAt, expiresAt: data.expiresAt });
  }
  return { created, path, retired };
}

/** Removes a key from the JWKS at once. Refuses to leave the service with nothing to sign with. */
export async function revoke(dir: string, keys: LoadedKey[], now: number, kid: string, signerKid: string | undefined): Promise<void> {
  const key = keys.find((k) => k.kid === kid);
  if (!key) throw new RotationError(`no key with kid ${kid}`);
  if (key.revokedAt !== null) return;
  const others = liveSigners(keys, now).filter((k) => k.kid !== kid && k.activatesAt <= now);
  if (kid === signerKid && others.length === 0) {
    throw new RotationError(`${kid} is the only signing key; run "keys rotate --now" first, then revoke it`);
  }
  const t = iso(now);
  await writeKeyFile(
    dir,
    {
      ...key.data,
      retiresAt: key.retiresAt !== null && key.retiresAt < now ? key.data.retiresAt : t,
      expiresAt: t,
      revokedAt: t,
    },
    basename(key.file),
  );
}

/** Deletes the files of keys that have left the JWKS. Returns their kids. */
export async function prune(keys: LoadedKey[], now: number): Promise<string[]> {
  const gone = keys.filter((k) => k.expiresAt !== null && k.expiresAt <= now);
  for (const key of gone) await unlink(key.file);
  return gone.map((k) => k.kid);
}
