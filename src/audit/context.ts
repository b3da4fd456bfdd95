/**
 * Who is acting and from where, for the audit trail. Built once per request (or per CLI command) and
 * passed down to every service call that emits an event, which hands it to the subscribers with the
 * event. Passed explicitly, not kept in async-local storage: that makes Node run a hook for every promise
 * of the process, a cost every request paid, GET /verify included, though few ever emit an event.
 */
export interface ActionContext {
  /** `user:<id>`, `admin:<id>`, `key:<name>`, `cli`; absent: the user the event is about, else `system`. */
  actor?: string;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
}

/** No request and no named actor: the entry's actor is the user the event is about, else `system`. */
export const NO_CONTEXT: Readonly<ActionContext> = Object.freeze({ ip: null, userAgent: null, requestId: null });

/** An actor acting outside any request: the CLI (`cli`), the start-up (`system:bootstrap`). */
export const systemContext = (actor: string): Readonly<ActionContext> => Object.freeze({ actor, ip: null, userAgent: null, requestId: null });

/** What a `latchkey` command changes. */
export const CLI_CONTEXT = systemContext('cli');
