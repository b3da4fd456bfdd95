import { createHash, type KeyObject } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { generateKeyFile, readKeyFile, writeKeyFile, type LoadedKey, type PublicJwk } from './key-file.js';

export interface Jwks {
  keys: PublicJwk[];
}

export interface PublishedJwks {
  body: string;
  etag: string;
  kids: string[];
}

/**
 * The signing keys in `dir`, with their schedule. Which key signs and which are published is a pure
 * function of the files and the time, so instances sharing a directory agree without talking.
 */
export class KeyStore {
  private keys: LoadedKey[] = [];
  private published: PublishedJwks | null = null;

  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** Reads every `*.json` in the directory. A bad file is reported and skipped, never fatal. */
  async load(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') names = [];
      else throw err;
    }
    const loaded: LoadedKey[] = [];
    for (const name of names.sort()) {
      const path = join(this.dir, name);
      try {
        const key = await readKeyFile(path);
        const mode = (await stat(path)).mode & 0o777;
        if (mode & 0o077) this.log.warn({ file: path, mode: mode.toString(8) }, 'signing key file is readable by others; chmod 600 it');
        loaded.push(key);
      } catch (err) {
        this.log.error({ file: path, reason: (err as Error).message }, 'ignoring unreadable signing key file');
      }
    }
    this.keys = loaded;
  }

  /**
   * Development convenience: with no key at all, generate one and say so. Production refuses instead
   * (the caller decides), because a key generated per instance would not be shared by its peers.
   */
  async ensureKey(now: Date): Promise<LoadedKey | null> {
    if (this.keys.length > 0) return null;
    const path = await writeKeyFile(this.dir, await generateKeyFile(now));
    await this.load();
    this.log.warn({ file: path }, 'no signing key found: generated a development key');
    return this.keys[0] ?? null;
  }

  get size(): number {
    return this.keys.length;
  }

  /** The key that signs at `now`: the most recently activated one that is active and not retired. */
  signer(now: number): { kid: string; privateKey: KeyObject } | null {
    let best: LoadedKey | null = null;
    for (const key of this.keys) {
      if (!isPublished(key, now) || key.activatesAt > now) continue;
      if (key.retiresAt !== null && key.retiresAt <= now) continue;
      if (!best || key.activatesAt > best.activatesAt) best = key;
    }
    return best && { kid: best.kid, privateKey: best.privateKey };
  }

  /** The public key for `kid`, only if that key is published at `now`. */
  verificationKey(kid: string, now: number): KeyObject | null {
    const key = this.keys.find((k) => k.kid === kid);
    return key && isPublished(key, now) ? key.publicKey : null;
  }

  /** A table of every key and its state at `now`, for operators. */
  describe(now: number): string {
    const signer = this.signer(now)?.kid;
    const when = (t: number | null) => (t === null ? '-' : new Date(t).toISOString());
    const rows = this.keys.map((k) => [
      k.kid,
      k.kid === signer ? 'signing' : isPublished(k, now) ? 'published' : k.publishAt > now ? 'pending' : 'expired',
      when(k.publishAt),
      when(k.activatesAt),
      when(k.retiresAt),
      when(k.expiresAt),
    ]);
    const header = ['kid', 'state', 'published', 'activates', 'retires', 'expires'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
    return [line(header), ...rows.map(line)].join('\n') + (rows.length ? '' : '\n(no keys)');
  }

  /** The JWKS document and its ETag, rebuilt only when the set of published keys changes. */
  jwks(now: number): PublishedJwks {
    const keys = this.keys.filter((k) => isPublished(k, now)).sort((a, b) => b.activatesAt - a.activatesAt);
    const kids = keys.map((k) => k.kid);
    if (this.published && sameList(this.published.kids, kids)) return this.published;
    const body = JSON.stringify({ keys: keys.map((k) => k.publicJwk) } satisfies Jwks);
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    this.published = { body, etag, kids };
    return this.published;
  }
}

function isPublished(key: LoadedKey, now: number): boolean {
  return key.publishAt <= now && (key.expiresAt === null || key.expiresAt > now);
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
