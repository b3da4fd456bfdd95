import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Who is acting and from where, for the audit trail. Set once per request (or per CLI command) and read by
 * the audit subscriber, so services emit plain events and never pass request details around.
 */
export interface ActionContext {
  /** `user:<id>`, `admin:<id>`, `key:<name>`, `cli`; absent: the user the event is about, else `system`. */
  actor?: string;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
}

const storage = new AsyncLocalStorage<ActionContext>();

export const currentContext = (): ActionContext | undefined => storage.getStore();

export function runWithContext<T>(context: ActionContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** Names the actor of the rest of this request (an authenticated operator). */
export function setActor(actor: string): void {
  const context = storage.getStore();
  if (context) context.actor = actor;
}
