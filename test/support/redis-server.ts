import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export interface RedisServerHandle {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly stopped: boolean;
  /** SIGTERM and wait for exit. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit: a crash, nothing flushed. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that hangs with its connections open. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Starts again on the same port and folder (with appendonly, the data survives). */
  restart(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** A port on 127.0.0.1 that nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function answersPing(port: number): Promise<boolean> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, connectTimeout: 500 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts a private redis-server on 127.0.0.1 for tests that need to stop, hang or restart it. */
export async function startRedisServer(
  opts: { port?: number; appendonly?: boolean; dir?: string; extraArgs?: string[] } = {},
): Promise<RedisServerHandle> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'lk-redis-')));
  let port = opts.port ?? (await freePort());
  let child: ChildProcess | null = null;
  let output = '';

  async function launch(): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      output = '';
      const args = [
        '--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'no', '--daemonize', 'no',
        '--save', '', '--appendonly', opts.appendonly ? 'yes' : 'no', '--dir', dir,
        '--maxmemory-policy', 'noeviction', '--logfile', '', ...(opts.extraArgs ?? []),
      ];
      const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
      proc.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
      live.add(proc);
      proc.once('exit', () => live.delete(proc));
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && proc.exitCode === null) {
        if (await answersPing(port)) {
          child = proc;
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      proc.kill('SIGKILL');
      await exited(proc);
      if (!/address already in use/i.test(output)) break;
      await new Promise((r) => setTimeout(r, 250));
      if (opts.port === undefined && attempt > 2) port = await freePort();
    }
    throw new Error(`redis-server did not start on port ${port}:\n${output}`);
  }

  async function signal(sig: NodeJS.Signals): Promise<void> {
    const proc = child;
    if (!proc) return;
    child = null;
    proc.kill(sig);
    await exited(proc);
  }

  await launch();
  return {
    get port() {
      return port;
    },
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    dir,
    get stopped() {
      return child === null;
    },
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    pause: async () => {
      child?.kill('SIGSTOP');
    },
    resume: async () => {
      child?.kill('SIGCONT');
    },
    restart: async () => {
      await signal('SIGTERM');
      await launch();
    },
  };
}
