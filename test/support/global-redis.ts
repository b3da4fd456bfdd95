import type { TestProject } from 'vitest/node';
import { startRedisServer } from './redis-server.js';
import './redis.js';

/**
 * Picks the Redis for the whole run: REDIS_URL if set; a container if a Docker engine answers; otherwise a
 * redis-server child process on a free port. Tests never skip for want of Redis.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.REDIS_URL) {
    console.log(`tests use REDIS_URL (${process.env.REDIS_URL.replace(/\/\/[^@]*@/, '//***@')})`);
    project.provide('redisUrl', process.env.REDIS_URL);
    return async () => undefined;
  }
  const container = await tryContainer();
  if (container) {
    console.log('tests use a Redis container (testcontainers)');
    project.provide('redisUrl', container.url);
    return container.stop;
  }
  const server = await startRedisServer();
  console.log(`tests use a redis-server child process on port ${server.port}`);
  project.provide('redisUrl', server.url);
  return () => server.stop();
}

async function tryContainer(): Promise<{ url: string; stop: () => Promise<void> } | null> {
  try {
    const tc = await import('testcontainers');
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 3000).unref());
    await Promise.race([tc.getContainerRuntimeClient(), timeout]);
    const c = await new tc.GenericContainer('redis:7-alpine')
      .withCommand(['redis-server', '--maxmemory-policy', 'noeviction'])
      .withExposedPorts(6379)
      .start();
    return { url: `redis://${c.getHost()}:${c.getMappedPort(6379)}`, stop: async () => void (await c.stop()) };
  } catch {
    return null;
  }
}
