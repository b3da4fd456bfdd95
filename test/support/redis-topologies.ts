import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServerHandle } from './redis-server.js';

const run = promisify(execFile);

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A free port whose cluster-bus twin (port + 10 000) is free too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) return port;
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function info(port: number, section: string): Promise<string> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return section === 'cluster' ? String(await client.call('CLUSTER', 'INFO')) : await client.info(section);
  } finally {
    client.disconnect();
  }
}

export interface ClusterHandle {
  nodes: string[];
  stop(): Promise<void>;
}

/** Three masters, no replicas, all 16 384 slots assigned: the smallest real Redis Cluster. */
export async function startRedisCluster(): Promise<ClusterHandle> {
  const servers: RedisServerHandle[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const dir = await mkdtemp(join(tmpdir(), 'lk-cluster-'));
      servers.push(
        await startRedisServer({
          port: await clusterPort(),
          dir,
          extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000'],
        }),
      );
    }
    const addresses = servers.map((s) => `127.0.0.1:${s.port}`);
    await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes']);
    for (const s of servers) await until(`cluster state ok on ${s.port}`, async () => (await info(s.port, 'cluster')).includes('cluster_state:ok'));
    return { nodes: servers.map((s) => s.url), stop: async () => void (await Promise.all(servers.map((s) => s.stop()))) };
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }
}

export interface SentinelHandle {
  master: RedisServerHandle;
  replica: RedisServerHandle;
  sentinelUrl: string;
  name: string;
  stop(): Promise<void>;
}

/** A master, its replica, and one Sentinel that fails over one second after the master stops answering. */
export async function startRedisSentinel(): Promise<SentinelHandle> {
  const name = 'lkmaster';
  const master = await startRedisServer();
  const replica = await startRedisServer({ extraArgs: ['--replicaof', '127.0.0.1', String(master.port)] });
  await until('replica in sync', async () => (await info(replica.port, 'replication')).includes('master_link_status:up'));
  const dir = await mkdtemp(join(tmpdir(), 'lk-sentinel-'));
  const port = await clusterPort();
  const conf = join(dir, 'sentinel.conf');
  await writeFile(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      'protected-mode no',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 5000`,
      '',
    ].join('\n'),
  );
  const sentinel: ChildProcess = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const stopSentinel = async () => {
    if (sentinel.exitCode !== null) return;
    const exited = new Promise((r) => sentinel.once('exit', r));
    sentinel.kill('SIGTERM');
    await exited;
  };
  process.once('exit', () => sentinel.kill('SIGKILL'));
  try {
    await until('sentinel to know the master', async () => (await info(port, 'sentinel')).includes(`name=${name},status=ok`));
  } catch (err) {
    await Promise.all([stopSentinel(), master.stop(), replica.stop()]);
    throw err;
  }
  return {
    master,
    replica,
    sentinelUrl: `redis://127.0.0.1:${port}`,
    name,
    stop: async () => void (await Promise.all([stopSentinel(), master.stop(), replica.stop()])),
  };
}
