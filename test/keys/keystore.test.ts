import { mkdtemp, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { buildApp, StartupError } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { generateKeyFile, writeKeyFile } from '../../src/keys/key-file.js';
import { KeyStore } from '../../src/keys/keystore.js';
import { MemoryStore } from '../../src/store/memory-store.js';

const tmp = () => mkdtemp(join(tmpdir(), 'lk-keytest-'));

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, stream) };
}

describe('signing keys at start-up', () => {
  it('a development start with no key generates one (0600) and says so', async () => {
    const dir = join(await tmp(), 'keys');
    const { lines, logger } = capture();
    const app = await buildApp(loadConfig({ LATCHKEY_KEYS_DIR: dir, LOG_LEVEL: 'silent' }), { logger, store: new MemoryStore() });
    try {
      const files = await readdir(dir);
      expect(files).toHaveLength(1);
      expect((await stat(join(dir, files[0]!))).mode & 0o777).toBe(0o600);
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      expect(lines.some((l) => String(l.msg).includes('generated a development key'))).toBe(true);
      expect(JSON.stringify(lines)).not.toContain('PRIVATE KEY');
      expect((await app.inject('/readyz')).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('a production start with no key refuses to run', async () => {
    const dir = await tmp();
    const config = loadConfig({
      NODE_ENV: 'production',
      LATCHKEY_ISSUER: 'https://auth.example.com',
      REDIS_URL: 'redis://127.0.0.1:1',
      LATCHKEY_KEYS_DIR: dir,
      LOG_LEVEL: 'silent',
    });
    await expect(buildApp(config, { store: new MemoryStore() })).rejects.toBeInstanceOf(StartupError);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a malformed or mismatched file is reported and ignored; the good key still signs', async () => {
    const dir = await tmp();
    const good = await generateKeyFile(new Date());
    await writeKeyFile(dir, good);
    await writeFile(join(dir, 'broken.json'), '{"kid": "x"', { mode: 0o600 });
    const other = await generateKeyFile(new Date());
    await writeFile(join(dir, 'mismatch.json'), JSON.stringify({ ...other, kid: good.kid.replace(/.$/, good.kid.endsWith('a') ? 'b' : 'a') }), { mode: 0o600 });
    const { lines, logger } = capture();
    const keys = new KeyStore(dir, logger);
    await keys.load();
    expect(keys.size).toBe(1);
    expect(keys.signer(Date.now())?.kid).toBe(good.kid);
    const errors = lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(2);
    expect(JSON.stringify(errors)).not.toContain('PRIVATE KEY');
  });
});
