/**
 * What latchkey and its verifiers agree on in Redis. The verifier imports nothing else from latchkey,
 * and the Redis store takes its key layout from here, so the two cannot drift apart.
 *
 * Key names are relative to latchkey's key prefix (default `lk:`). A verifier reads only keys that hold
 * no credential — `{uid}:x`, `{uid}:ss`, `{uid}:j:*`, `revocations`, `epoch`, `global` — so a resource server can be
 * given a read-only Redis ACL user limited to them (README "Protecting a resource server"). The user
 * record (`{uid}:u`, with the password hash) and sessions (`{uid}:s:*`, with token hashes and MAC keys) are
 * latchkey's alone.
 */

export const keyNames = {
  /** The account: e-mail, password hash, roles. Never read by verifiers. */
  user: (uid: string) => `{${uid}}:u`,
  /** The account's revocation state: `dis` (1 = disabled) and `ra` (every session before it is revoked). */
  state: (uid: string) => `{${uid}}:x`,
  /** Live session ids scored by when their current refresh token expires (ms). */
  index: (uid: string) => `{${uid}}:ss`,
  session: (uid: string, sid: string) => `{${uid}}:s:${sid}`,
  deny: (uid: string, jti: string) => `{${uid}}:j:${jti}`,
  /** Revocation events, a stream trimmed to the access-token lifetime (nothing older can matter). */
  revocations: 'revocations',
  /** A random marker: if it vanishes or changes, the store lost its data. */
  epoch: 'epoch',
  /**
   * The incident switch, a hash: `ra` (ms) — every session created before it is revoked, for everyone —
   * and `ra:<role>` for the users holding that role. Whole seconds, see `revokedGlobally`.
   */
  global: 'global',
};

/** The incident switch as read from `global`: 0 where it was never pulled. */
export interface GlobalRevocation {
  all: number;
  roles: Record<string, number>;
}

/** Parses HGETALL of `global` (an ioredis object, or the flat array of a raw call). */
export function parseGlobal(reply: unknown): GlobalRevocation {
  const out: GlobalRevocation = { all: 0, roles: {} };
  const entries: Array<[string, unknown]> = Array.isArray(reply)
    ? Array.from({ length: Math.floor(reply.length / 2) }, (_, i) => [String(reply[2 * i]), reply[2 * i + 1]])
    : Object.entries((reply ?? {}) as Record<string, unknown>);
  for (const [field, raw] of entries) {
    const at = Number(raw);
    if (!Number.isFinite(at)) continue;
    if (field === 'ra') out.all = at;
    else if (field.startsWith('ra:')) out.roles[field.slice(3)] = at;
  }
  return out;
}

/** The switch with one more fact applied (marks only move forward). */
export function applyGlobal(g: GlobalRevocation, fact: { ra: number; role: string | null }): GlobalRevocation {
  if (fact.role === null) return { all: Math.max(g.all, fact.ra), roles: g.roles };
  return { all: g.all, roles: { ...g.roles, [fact.role]: Math.max(g.roles[fact.role] ?? 0, fact.ra) } };
}

/** Every session created (and every token issued) before this instant (ms) is revoked for these roles. */
export function revokedBefore(g: GlobalRevocation, roles: readonly string[] | undefined): number {
  let at = g.all;
  for (const role of roles ?? []) at = Math.max(at, g.roles[role] ?? 0);
  return at;
}

/**
 * Whether the incident switch revokes an access token. The mark is always a whole second and latchkey
 * never issues a token in the second the switch was pulled with an earlier `iat` (it holds such logins
 * until the mark), so comparing `iat` — whole seconds (RFC 7519 §2) — is exact: a login right after the
 * switch stays valid, every token issued before it is refused (the same-second problem: a login right after the mark must stay valid).
 */
export function revokedGlobally(g: GlobalRevocation, claims: { iat: number; roles?: readonly string[] }): boolean {
  return claims.iat * 1000 < revokedBefore(g, claims.roles);
}

/**
 * A revocation fact, one stream entry. `exp` (epoch ms) is when it stops mattering: every access token
 * it could apply to has expired by then.
 */
export type RevocationFact =
  | { type: 'jti'; uid: string; jti: string; exp: number }
  | { type: 'sid'; uid: string; sid: string; exp: number }
  /** The incident switch was pulled: see `keyNames.global`. `role` null means everyone. */
  | { type: 'global'; ra: number; role: string | null; exp: number };

export function encodeFact(f: RevocationFact): string[] {
  if (f.type === 'global') return ['type', 'global', 'ra', String(f.ra), ...(f.role === null ? [] : ['role', f.role]), 'exp', String(f.exp)];
  return f.type === 'jti'
    ? ['type', 'jti', 'uid', f.uid, 'jti', f.jti, 'exp', String(f.exp)]
    : ['type', 'sid', 'uid', f.uid, 'sid', f.sid, 'exp', String(f.exp)];
}

export function decodeFact(fields: string[]): RevocationFact | null {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
  const uid = m.get('uid');
  const exp = Number(m.get('exp'));
  if (m.get('type') === 'global') {
    const ra = Number(m.get('ra'));
    return Number.isFinite(ra) && Number.isFinite(exp) ? { type: 'global', ra, role: m.get('role') ?? null, exp } : null;
  }
  if (!uid || !Number.isFinite(exp)) return null;
  if (m.get('type') === 'jti' && m.get('jti')) return { type: 'jti', uid, jti: m.get('jti')!, exp };
  if (m.get('type') === 'sid' && m.get('sid')) return { type: 'sid', uid, sid: m.get('sid')!, exp };
  return null;
}

/**
 * Is an access token with these claims still good in the store: not deny-listed, its session live, its
 * user enabled. Read-only (runs as EVAL_RO for read-only ACL users), one round trip, and it touches no
 * key that holds a credential.
 * KEYS[1] user state, KEYS[2] session index, KEYS[3] deny-list key of the token's jti
 * ARGV[1] now (ms), ARGV[2] session id
 */
export const isActiveLua = `#!lua flags=no-writes
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local exp = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not exp or tonumber(exp) <= tonumber(ARGV[1]) then return 0 end
if redis.call('HGET', KEYS[1], 'dis') ~= '0' then return 0 end
return 1
`;

/** The keys and arguments of `isActiveLua` for a token's claims, relative to the key prefix. */
export function isActiveArgs(prefix: string, c: { sub: string; sid: string; jti: string }, now: number): Array<string | number> {
  return [prefix + keyNames.state(c.sub), prefix + keyNames.index(c.sub), prefix + keyNames.deny(c.sub, c.jti), now, c.sid];
}
