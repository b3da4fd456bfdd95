import pino from 'pino';
import { buildCoreServices, revocationRetentionMs, type CoreServices } from './app.js';
import { CLI_CONTEXT, type ActionContext } from './audit/context.js';
import { CliError } from './cli-error.js';
import type { Config } from './config.js';
import { RedisStore } from './store/redis-store.js';

/**
 * Opens the configured Redis store and the services the server uses on it, and runs `work`, handing it the
 * action context of actor `cli` to pass to what it calls: what a command changes is revoked, announced to
 * verifiers and audited exactly as the server would.
 * Every CLI command that touches the store goes through here. Needs a Redis store (the caller says what to
 * do without one).
 */
export async function withCliServices<T>(
  config: Config,
  work: (core: CoreServices, context: ActionContext) => Promise<T>,
  logLevel = 'warn',
): Promise<T> {
  if (!config.redis) throw new CliError('no Redis configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES)', 2);
  // The CLI's own log goes to stderr: stdout is for results.
  const logger = pino({ level: logLevel }, pino.destination(2));
  const store = new RedisStore({ ...config.redis, logger, revocationRetentionMs: revocationRetentionMs(config) });
  try {
    if (!(await store.connect())) throw new CliError('cannot reach Redis; check REDIS_URL (or the Sentinel or Cluster settings)');
    const core = await buildCoreServices(config, { store, clock: Date.now, logger });
    try {
      return await work(core, CLI_CONTEXT);
    } finally {
      await core.resets.flush();
      await core.audit.flush();
      core.mailer?.close();
    }
  } finally {
    await store.close();
  }
}
