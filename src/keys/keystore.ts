import { createHash, type KeyObject } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { generateKeyFile, readKeyFile, writeKeyFile, type LoadedKey, type PublicJwk } from './key-file.js';
import { keyState } from './rotation.js';

export interface Jwks {
  keys: PublicJwk[];
}

export interface PublishedJwks {
  body: string;
  etag: string;
  kids: string[];
}

interface CachedFile {
  /** mtime, size and inode: a rewrite (always by rename) changes at least one. */
  version: string;
  key: LoadedKey;
}

/**
 * The signing keys in `dir`, with their schedule. Which key signs and which are published is a pure
 * function of the files and the time, so instances sharing a directory agree without talking.
 *
 * Changes are picked up without a restart: a directory watch triggers a re-read, and a periodic re-scan
 * catches what a watch misses (network filesystems, editors that replace the folder). A re-read swaps the
 * whole key list at once. A file that cannot be read is reported and skipped; if it was good before, its
 * last good version stays in use, so a bad edit never empties the JWKS or stops signing.
 */
export class KeyStore {
  private keys: LoadedKey[] = [];
  private files = new Map<string, CachedFile>();
  private published: PublishedJwks | null = null;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> | null = null;
  private again = false;

  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** Reads every `*.json` in the directory, reusing what has not changed since the last read. */
  async load(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.error({ dir: this.dir, reason: (err as Error).message }, 'cannot read the key folder; keeping the keys in use');
        return;
      }
      names = [];
    }
    const next = new Map<string, CachedFile>();
    for (const name of names.sort()) {
      const path = join(this.dir, name);
      const previous = this.files.get(name);
      try {
        const st = await stat(path);
        const version = `${st.mtimeMs}:${st.size}:${st.ino}`;
        if (previous?.version === version) {
          next.set(name, previous);
          continue;
        }
        const key = await readKeyFile(path);
        if (st.mode & 0o077) this.log.warn({ file: path, mode: (st.mode & 0o777).toString(8) }, 'signing key file is readable by others; chmod 600 it');
        next.set(name, { version, key });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        this.log.error({ file: path, reason: (err as Error).message }, previous ? 'unreadable signing key file; keeping its last good version' : 'ignoring unreadable signing key file');
        if (previous) next.set(name, previous);
      }
    }
    const seen = new Set<string>();
    const keys: LoadedKey[] = [];
    for (const { key } of next.values()) {
      if (seen.has(key.kid)) {
        this.log.error({ file: key.file, kid: key.kid }, 'ignoring a second file for the same key');
        continue;
      }
      seen.add(key.kid);
      keys.push(key);
    }
    const changed = keys.length !== this.keys.length || keys.some((k, i) => k !== this.keys[i]);
    this.files = next;
    this.keys = keys;
    if (changed) this.log.info({ kids: keys.map((k) => k.kid) }, 'signing keys loaded');
  }

  /** Watches the folder and re-scans every `rescanMs` until `stop()`. */
  start(rescanMs: number): void {
    this.timer = setInterval(() => void this.reload(), rescanMs);
    this.timer.unref();
    try {
      this.watcher = watch(this.dir, { persistent: false }, () => void this.reload());
      this.watcher.on('error', (err) => {
        this.log.warn({ reason: err.message }, 'key folder watch failed; relying on the periodic re-scan');
        this.watcher?.close();
        this.watcher = null;
      });
    } catch (err) {
      this.log.warn({ reason: (err as Error).message }, 'cannot watch the key folder; relying on the periodic re-scan');
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.watcher?.close();
    this.timer = null;
    this.watcher = null;
  }

  /** One re-read at a time; events arriving meanwhile cause exactly one more. */
  reload(): Promise<void> {
    if (this.reloading) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.again = false;
        await this.load().catch((err: Error) => this.log.error({ reason: err.message }, 'key reload failed'));
      } while (this.again);
      this.reloading = null;
    })();
    return this.reloading;
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

  /** Every key read from the folder, including ones not (or no longer) published. */
  all(): LoadedKey[] {
    return [...this.keys];
  }

  /**
   * The key that signs at `now`: the most recently activated one that is published, active and not
   * retired. Being published is part of the rule, so no token carries a kid missing from this JWKS.
   */
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
    const rows = this.keys
      .slice()
      .sort((a, b) => a.activatesAt - b.activatesAt)
      .map((k) => [
        k.kid,
        keyState(k, now, signer),
        isPublished(k, now) ? 'yes' : 'no',
        k.kid === signer ? 'yes' : 'no',
        when(k.publishAt),
        when(k.activatesAt),
        when(k.retiresAt),
        when(k.expiresAt),
      ]);
    const header = ['kid', 'state', 'published', 'signs', 'created/published', 'activates', 'retires', 'leaves jwks'];
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
