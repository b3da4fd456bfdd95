import type { Config } from '../config.js';
import type { AuthEvent } from '../events.js';

/** A change the keys CLI made to the key folder, for the audit trail. */
export type KeyChange = Extract<AuthEvent, { type: `signing_key${string}` }>;

/**
 * Records a key change in the audit trail, as actor `cli`, when a Redis store is configured (the same
 * environment the server reads). The key folder is the truth and the change is already made: a trail that
 * cannot be written is reported on stderr, not turned into a failed command.
 */
export async function auditKeyChange(config: Config, change: KeyChange, err: (line: string) => void): Promise<void> {
  if (!config.redis) {
    err('note: no Redis configured (REDIS_URL…), so this key change is not in the audit trail');
    return;
  }
  try {
    // Loaded only here: the other keys commands need neither the store nor the services.
    const { withCliServices } = await import('../cli-services.js');
    await withCliServices(config, async (core, context) => core.events.emit(change, context), 'silent');
  } catch (e) {
    err(`warning: the key change is made, but it could not be written to the audit trail: ${(e as Error).message}`);
  }
}
