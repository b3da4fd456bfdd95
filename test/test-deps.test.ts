import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const SCRIPT = join(import.meta.dirname, '..', 'scripts', 'test-deps.sh');
const NEEDED = [
  ['redis-server', 'redis-server'],
  ['nginx', 'nginx-light'],
  ['chromium', 'chromium'],
  ['promtool', 'prometheus'],
  ['haproxy', 'haproxy'],
] as const;

/** Absolute path of a program on the test process's own PATH. */
function which(program: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(dir, program);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${program} is not on PATH`);
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A directory to serve as the whole PATH: only bash and the few tools the script and its fakes use. */
function fakeBin(): string {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-test-deps-'));
  for (const tool of ['bash', 'env', 'id', 'chmod']) symlinkSync(which(tool), join(dir, tool));
  dirs.push(dir);
  return dir;
}

function writeExecutable(path: string, body: string): void {
  writeFileSync(path, `#!${which('bash')}\n${body}\n`, { mode: 0o755 });
}

function runScript(path: string, env: Record<string, string | undefined> = {}) {
  const started = performance.now();
  const result = spawnSync(which('bash'), [SCRIPT], { env: { PATH: path, ...env }, encoding: 'utf8', timeout: 10_000 });
  return { ...result, ms: performance.now() - started };
}

describe('scripts/test-deps.sh', () => {
  it('names every missing program with its package in one message and exits non-zero when it cannot install', () => {
    const bin = fakeBin();
    for (const env of [{ LATCHKEY_TEST_DEPS: 'check' }, {}]) {
      const { status, stdout, stderr } = runScript(bin, env);
      expect(status).toBe(1);
      expect(stdout).toBe('');
      for (const [program, pkg] of NEEDED) expect(stderr).toMatch(new RegExp(`^ +${program} +package ${pkg}\\b`, 'm'));
      expect(stderr.match(/^test-deps:/gm)).toHaveLength(1);
    }
    expect(runScript(bin).stderr).toContain('no apt-get');
  });

  it('neither root nor sudo: names what is missing and never calls apt-get', () => {
    const bin = fakeBin();
    const marker = join(bin, 'apt-get-was-called');
    writeExecutable(join(bin, 'apt-get'), `echo "$@" >> ${marker}`);
    rmSync(join(bin, 'id'));
    writeExecutable(join(bin, 'id'), 'echo 1000');
    const { status, stderr } = runScript(bin);
    expect(status).toBe(1);
    expect(stderr).toContain('(not root, and no sudo to install them with)');
    for (const [program, pkg] of NEEDED) expect(stderr).toMatch(new RegExp(`^ +${program} +package ${pkg}\\b`, 'm'));
    expect(existsSync(marker)).toBe(false);
  });

  it('names only what is missing', () => {
    const bin = fakeBin();
    for (const [program] of NEEDED.filter(([p]) => p !== 'promtool')) writeExecutable(join(bin, program), 'exit 0');
    const { status, stderr } = runScript(bin, { LATCHKEY_TEST_DEPS: 'check' });
    expect(status).toBe(1);
    expect(stderr).toMatch(/^ +promtool +package prometheus$/m);
    expect(stderr).not.toMatch(/^ +(redis-server|nginx|chromium|haproxy) /m);
    expect(stderr).toContain('apt-get install --no-install-recommends prometheus\n');
  });

  it('with every program present it exits 0 at once and never calls apt-get', () => {
    const bin = fakeBin();
    const marker = join(bin, 'apt-get-was-called');
    for (const [program] of NEEDED) writeExecutable(join(bin, program), 'exit 0');
    writeExecutable(join(bin, 'apt-get'), `echo "$@" >> ${marker}`);
    writeExecutable(join(bin, 'sudo'), `echo sudo >> ${marker}; exec "$@"`);
    const { status, stdout, stderr, ms } = runScript(bin);
    expect({ status, stdout, stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(existsSync(marker)).toBe(false);
    expect(ms).toBeLessThan(2_000);
  });

  it('installs the packages of the missing programs with apt-get, once, after one update', () => {
    const bin = fakeBin();
    const log = join(bin, 'apt-get.log');
    // nginx and haproxy present: Debian puts them in /usr/sbin, which the script never installs over.
    writeExecutable(join(bin, 'nginx'), 'exit 0');
    writeExecutable(join(bin, 'haproxy'), 'exit 0');
    // The fake apt-get "installs" a package by putting its program on PATH.
    const cases = NEEDED.map(([program, pkg]) => `${pkg}) p=${program} ;;`).join(' ');
    writeExecutable(
      join(bin, 'apt-get'),
      `echo "$@" >> ${log}
for arg in "$@"; do
  case "$arg" in ${cases} *) continue ;; esac
  echo 'exit 0' > ${bin}/$p && chmod +x ${bin}/$p
done`,
    );
    writeExecutable(join(bin, 'sudo'), 'exec "$@"');
    const { status, stderr } = runScript(bin);
    expect(stderr).toContain('test-deps: installing redis-server chromium prometheus');
    expect(status).toBe(0);
    expect(readFileSync(log, 'utf8').split('\n').filter(Boolean)).toEqual([
      '-qq -o DPkg::Lock::Timeout=600 update',
      '-qq -o DPkg::Lock::Timeout=600 install -y --no-install-recommends redis-server chromium prometheus',
    ]);
  });

  it('refuses an unknown LATCHKEY_TEST_DEPS instead of guessing', () => {
    const { status, stderr } = runScript(fakeBin(), { LATCHKEY_TEST_DEPS: 'skip' });
    expect(status).toBe(2);
    expect(stderr).toContain('LATCHKEY_TEST_DEPS must be install or check');
  });
});
