import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/** `npm run bench -- --quick` end to end, so the harness cannot rot. Figures are not judged here. */
describe('benchmark harness', () => {
  it('runs every measurement in quick mode and writes its results', { timeout: 240_000 }, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--conditions=latchkey-source', 'bench/run.ts', '--quick'], {
      maxBuffer: 16 * 1024 * 1024,
      timeout: 230_000,
    });
    const file = /results: (\S+)/.exec(stdout)?.[1];
    expect(file).toBeDefined();
    const report = JSON.parse(await readFile(file!, 'utf8')) as Record<string, Record<string, unknown>>;
    const refresh = report.refresh as unknown as Array<{ rps: { median: number }; ceiling: { median: number } }>;
    expect(refresh[0]!.rps.median).toBeGreaterThan(0);
    expect(refresh[0]!.ceiling.median).toBeGreaterThan(0);
    expect(report.peer).not.toHaveProperty('error');
    for (const section of ['login', 'jwks', 'verify', 'scaling', 'memory']) expect(report[section]).toBeDefined();
    expect(stdout).toMatch(/refresh req\/s vs oidc-provider/);
  });
});
