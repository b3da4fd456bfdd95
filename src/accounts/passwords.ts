import { randomBytes } from 'node:crypto';
import argon2 from 'argon2';
import { unavailable } from '../errors.js';
import { traced } from '../tracing.js';

export interface Argon2Params {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

/**
 * argon2id hashing (OWASP minimum m=19 MiB, t=2, p=1). Hashing runs on libuv's thread pool, never on the
 * event loop; at most `concurrency` hashes run at once and at most `queue` wait, beyond which callers get
 * 503 rather than an ever-growing backlog that would starve every other request of memory and threads.
 */
export class PasswordHasher {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private dummy: Promise<string> | undefined;

  constructor(
    private readonly params: Argon2Params,
    private readonly concurrency = 4,
    private readonly queue = 64,
  ) {}

  hash(password: string): Promise<string> {
    return this.limited(() => traced('password hash', () => argon2.hash(password, { type: argon2.argon2id, ...this.params })));
  }

  /** Constant-shape verification: a malformed stored hash is a mismatch, not an exception. */
  verify(hash: string, password: string): Promise<boolean> {
    return this.limited(() => traced('password verify', () => argon2.verify(hash, password).catch(() => false)));
  }

  /**
   * For an unknown e-mail, spend the same work as a real verification against a hash of the same
   * parameters, so response time does not reveal which addresses have accounts.
   */
  async verifyDummy(password: string): Promise<false> {
    this.dummy ??= this.hash(randomBytes(16).toString('base64url'));
    await this.verify(await this.dummy, password);
    return false;
  }

  /** Hashes running now and waiting for a slot. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  needsRehash(hash: string): boolean {
    try {
      return argon2.needsRehash(hash, this.params);
    } catch {
      return true;
    }
  }

  /** A slot is handed straight from a finishing hash to the next waiter, so `running` never overshoots. */
  private async limited<T>(work: () => Promise<T>): Promise<T> {
    if (this.running < this.concurrency) {
      this.running++;
    } else {
      if (this.waiting.length >= this.queue) throw unavailable();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
