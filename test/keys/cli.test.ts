import { execFile } from 'node:child_process';
import { mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = async (...args: string[]) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--conditions=latchkey-source', 'src/keys/cli.ts', ...args], {
      env: { ...process.env, LATCHKEY_JWKS_MAX_AGE: '60' },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
};

const kids = (list: string) =>
  list
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/))
    .filter((c) => /^[0-9a-f]{32}$/.test(c[0] ?? ''))
    .map(([kid, state, published, signs]) => ({ kid, state, published, signs }));

describe('the keys CLI', () => {
  it('generates, lists, rotates, and guards its emergency commands', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'lk-cli-')), 'keys');
    expect((await run('keys', 'generate', '--dir', dir)).code).toBe(0);
    expect((await run('generate', '--dir', dir)).code).toBe(2);
    const [first] = kids((await run('list', '--dir', dir)).stdout);
    expect(first).toMatchObject({ state: 'signing', published: 'yes', signs: 'yes' });

    const staged = await run('rotate', '--dir', dir);
    expect(staged.code).toBe(0);
    expect(staged.stdout).toMatch(/signs from/);
    const afterStage = kids((await run('list', '--dir', dir)).stdout);
    expect(afterStage).toHaveLength(2);
    expect(afterStage.find((k) => k.kid !== first!.kid)).toMatchObject({ state: 'pending', published: 'yes', signs: 'no' });

    // Emergency commands say what they break and refuse without --yes off a terminal.
    const refused = await run('rotate', '--now', '--dir', dir);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/signs immediately/);
    expect(refused.stderr).toMatch(/refusing without --yes/);
    expect(kids((await run('list', '--dir', dir)).stdout)).toHaveLength(2);

    expect((await run('rotate', '--now', '--yes', '--dir', dir)).code).toBe(0);
    const afterNow = kids((await run('list', '--dir', dir)).stdout);
    const signing = afterNow.find((k) => k.signs === 'yes')!;
    expect(signing.kid).not.toBe(first!.kid);

    const noYes = await run('revoke', first!.kid!, '--dir', dir);
    expect(noYes.code).toBe(2);
    expect(noYes.stderr).toMatch(/stops verifying/);
    expect((await run('revoke', first!.kid!, '--yes', '--dir', dir)).code).toBe(0);
    expect(kids((await run('list', '--dir', dir)).stdout).find((k) => k.kid === first!.kid)).toMatchObject({ state: 'revoked', published: 'no' });

    const pruned = await run('prune', '--dir', dir);
    expect(pruned.stdout).toContain(`deleted ${first!.kid}`);
    for (const f of await readdir(dir)) expect((await stat(join(dir, f))).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);

    const bad = await run('explode', '--dir', dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/usage:/);
  });
});
