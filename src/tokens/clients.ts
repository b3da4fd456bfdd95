import { DEFAULT_CLIENTS, type ClientRegistration } from '../config.js';
import { ApiError } from '../errors.js';
import type { Channel } from '../store/store.js';

export type ClientKind = 'browser' | 'native';

/** The channel a kind of client receives its refresh token on (README "Browser (SPA) flow"). */
export const channelOf = (kind: ClientKind): Channel => (kind === 'browser' ? 'cookie' : 'body');

/**
 * The client registry behind the `client_id` claim (RFC 9068 §2.2). latchkey's clients are public
 * (RFC 6749 §2.1): a client id names an application and what it may do, it authenticates nothing. A
 * session remembers its client; the default client of a channel is stored as nothing (`null`).
 */
export class Clients {
  private readonly byId: Map<string, ClientRegistration>;

  constructor(registrations: ClientRegistration[]) {
    this.byId = new Map(registrations.map((c) => [c.id, c]));
  }

  /**
   * The session's client for a login or token request: the named one if it is registered for this kind
   * of client (and, for browsers, this origin), else the default of the kind. Throws `invalid_request`
   * (or what `unknown` builds) when the named client may not be used so.
   */
  resolve(
    id: string | undefined,
    kind: ClientKind,
    origin: string | undefined,
    unknown: () => ApiError = () => new ApiError('invalid_request', 'client_id: not a registered client'),
  ): string | null {
    if (id === undefined || id === DEFAULT_CLIENTS[kind]) {
      const configured = this.byId.get(DEFAULT_CLIENTS[kind]);
      if (configured) this.check(configured, kind, origin, unknown);
      return null;
    }
    const client = this.byId.get(id);
    if (!client) throw unknown();
    this.check(client, kind, origin, unknown);
    return id;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  private check(client: ClientRegistration, kind: ClientKind, origin: string | undefined, unknown: () => ApiError): void {
    if (!client.channels.includes(kind)) throw unknown();
    if (kind === 'browser' && client.origins.length > 0 && (!origin || !client.origins.includes(origin))) throw unknown();
  }
}
