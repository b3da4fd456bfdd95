/**
 * Lua scripts of the Redis store. Each runs atomically, so no other client sees a half-done rotation or
 * revocation. All of a user's keys share the hash tag `{<user id>}` and therefore one Cluster slot:
 *
 *   {uid}:u          hash    the account (id email pw roles ct, ll last login) — credentials: latchkey only
 *   {uid}:x          hash    its revocation state (dis, ra) — readable by verifiers
 *   {uid}:ss         zset    live session ids scored by when their current refresh token expires (ms) —
 *                            readable by verifiers
 *   {uid}:s:<sid>    hash    a session: k mac key, c current token hash, h channel (c|b), t created,
 *                            l last used, a absolute expiry, i ip, u + v user agent, o client id (absent for
 *                            the channel's default client), d '1' while the current token was handed out by a
 *                            late retry (see rotateLua), g the grace record once the session has rotated: the
 *                            just-spent token's hash (16 bytes), the successor nonce (22 characters), '1' if the
 *                            spent token had been handed out by a late retry else '0', and when it was spent
 *                            (ms), replaced at every rotation — latchkey only
 *   {uid}:j:<jti>    string  a deny-listed access token; lives until the token's exp plus skew and drift —
 *                            readable by verifiers
 *   global           hash    the incident switch: ra (ms) and ra:<role> — readable by verifiers; in a slot of
 *                            its own, so no script touches it with a user's keys: latchkey reads it with a
 *                            command of its own beside each check (see RedisStore.isAccessTokenActive)
 *   {uid}:pr         hash    the pending password-reset token: h its SHA-256, e when it expires (ms), n failed
 *                            attempts; lives until it expires — a credential: latchkey only
 *
 * Keys that belong to no user (src/store/redis-store.ts), none of them readable by verifiers:
 *
 *   e:<sha256(email)>  string  the e-mail index (user id) — bounded by the number of users
 *   users              zset    user ids by creation time, for listing — bounded by the number of users
 *   ak                 hash    admin API keys by id: name, SHA-256 of the secret, expiry — a credential;
 *                              bounded by the keys operators create (expired ones are deleted when listed)
 *   audit              stream  the audit trail: trimmed by age (LATCHKEY_AUDIT_RETENTION) and count
 *                              (LATCHKEY_AUDIT_MAX_ENTRIES) at every append, and expires after a quiet spell
 *   hk                 string  the random key of the audit trail's keyed hashes (one key)
 *   revocations, epoch          what verifiers follow (packages/verifier/src/protocol.ts)
 *   rl:<throttle>:<key>        throttle counters (src/throttle.ts; rate-limiter-flexible's own script, each
 *                              expiring with its window; account keys are hashed e-mails)
 *
 * Keys a script touches arrive as KEYS. Where a script must reach sessions it only learns about from the
 * index (eviction, revoke-all, listing), it derives their names from KEYS[idx] by swapping the `ss` suffix:
 * that keeps any ioredis keyPrefix and the hash tag, so the derived keys live in the same slot.
 *
 * Every script starts with a Redis 7 shebang. A write script without `allow-oom` is refused whole when
 * Redis is over `maxmemory`, before its first command runs (without the shebang only commands flagged
 * `denyoom` are refused, so a script that begins with a delete would write half-way); read-only scripts
 * say `no-writes`, so they also run under EVAL_RO and on replicas.
 *
 * `now` always arrives as ARGV, so tests control time. Integers are formatted with %.0f: Lua numbers
 * are doubles and tostring() would print large ones in exponent form.
 *
 * Memory: a hash stays in Redis's compact listpack encoding only while every value is at most
 * hash-max-listpack-value (64) bytes; one longer value turns it into a hashtable several times the size.
 * So the user agent (at most 128 bytes) is kept in two fields, `u` and `v`, and joined on reading.
 * Every byte of a session is paid once per session, so: one-letter field names; the expiry lives only in
 * the index score (and the key's TTL), not in the hash too; the grace record is a field of the session (52
 * bytes, within the listpack limit), not a key of its own, which would cost a key's overhead per session;
 * token hashes are stored truncated to their first 128 bits, still 2^128 work to match from a dump, and
 * compared the same way.
 */

const WRITES = '#!lua\n';
const READS = '#!lua flags=no-writes\n';

const prelude = `
local function int(x) return string.format('%.0f', x) end
local function short(h) return string.sub(h, 1, 16) end
local function tag(mk, h) return string.sub(redis.sha1hex(mk .. short(h)), 1, 32) end
local function ua1(ua) return string.sub(ua, 1, 64) end
local function ua2(ua) return string.sub(ua, 65, 128) end
`;

/**
 * KEYS[1] user hash, KEYS[2] user state, KEYS[3] session index, KEYS[4] new session hash
 * ARGV[1] session id, ARGV[2] secret hash (32 bytes), ARGV[3] mac key (16 bytes), ARGV[4] channel (c|b),
 * ARGV[5] now, ARGV[6] refresh ttl ms, ARGV[7] absolute ttl ms, ARGV[8] ip, ARGV[9] user agent,
 * ARGV[10] max live sessions per user, ARGV[11] client id ('' for the channel's default: nothing stored)
 * Returns {'created', tag, exp, abs, roles, {evicted session ids}} or {'user_unavailable'}.
 */
export const createSessionLua = `${WRITES}${prelude}
if redis.call('HGET', KEYS[2], 'dis') ~= '0' then return {'user_unavailable'} end
local roles = redis.call('HGET', KEYS[1], 'roles')
if not roles then return {'user_unavailable'} end
local now = tonumber(ARGV[5])
local abs = now + tonumber(ARGV[7])
local exp = math.min(now + tonumber(ARGV[6]), abs)
local base = string.sub(KEYS[3], 1, -3)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', int(now))
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[10]) + 1
local evicted = {}
if excess > 0 then
  evicted = redis.call('ZRANGE', KEYS[3], 0, excess - 1)
  for _, sid in ipairs(evicted) do
    redis.call('DEL', base .. 's:' .. sid)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, excess - 1)
end
redis.call('HSET', KEYS[4], 'k', ARGV[3], 'c', short(ARGV[2]), 'h', ARGV[4], 't', int(now), 'l', int(now),
  'a', int(abs), 'i', ARGV[8], 'u', ua1(ARGV[9]), 'v', ua2(ARGV[9]))
if ARGV[11] ~= '' then redis.call('HSET', KEYS[4], 'o', ARGV[11]) end
redis.call('PEXPIRE', KEYS[4], int(exp - now))
redis.call('HSET', KEYS[1], 'll', int(now))
redis.call('ZADD', KEYS[3], int(exp), ARGV[1])
if redis.call('PTTL', KEYS[3]) < exp - now then redis.call('PEXPIRE', KEYS[3], int(exp - now)) end
return {'created', tag(ARGV[3], ARGV[2]), int(exp), int(abs), roles, evicted}
`;

/**
 * The rotation decision (README "Security model", RFC 9700 §4.14.2). Exactly one caller presenting the
 * current token rotates; the others within the grace window get the nonce that determines the same
 * successor; any other genuine token of the session is reuse and revokes the session.
 *
 * A lost reply (the script ran, the answer never reached the client, which saw a 503) must not log the
 * user out however long the outage lasted: the just-spent token keeps returning its successor after the
 * window too, as long as nobody has presented that successor (its first presentation rotates it and
 * replaces the grace record, so a grace record that still names the presented token proves exactly that). Such a
 * late hand-out may have given the successor to a second holder (a thief who used a stolen token first),
 * so the session remembers it (`d`), and the token handed out late gets no late hand-out of its own once
 * spent: whichever of two holders comes second after the window is reuse, and the family is revoked.
 *
 * KEYS[1] user hash, KEYS[2] session index, KEYS[3] session hash, KEYS[4] user state
 * ARGV[1] session id, ARGV[2] presented secret hash, ARGV[3] presented tag, ARGV[4] channel (c|b),
 * ARGV[5] candidate successor hash, ARGV[6] candidate successor nonce (22 characters), ARGV[7] now,
 * ARGV[8] refresh ttl ms, ARGV[9] grace ms, ARGV[10] ip, ARGV[11] user agent, ARGV[12] '1' to accept only
 * the client ARGV[13] ('' for the channel's default), '0' for any
 * Returns {'rotated', tag, exp, abs, roles, '', client, created} | {'grace', tag, exp, abs, roles, nonce, client,
 * created, late (1 if handed out after the window)} | {'invalid'} | {'reused'}; `created` (the session's
 * creation, ms) lets latchkey apply the incident switch.
 */
export const rotateLua = `${WRITES}${prelude}
-- The grace value is read back by offsets: hash (16), nonce (22), late flag (1), time.
if #ARGV[6] ~= 22 then return redis.error_reply('successor nonce must be 22 characters') end
local s = redis.call('HMGET', KEYS[3], 'k', 'c', 'h', 'a', 'o', 't', 'g', 'd')
local mk, h = s[1], ARGV[2]
-- A token not minted for this session (forged from a known session id) changes nothing.
if not mk or #h ~= 32 or tag(mk, h) ~= ARGV[3] then return {'invalid'} end
h = short(h)
local function revoke()
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
local u = {redis.call('HGET', KEYS[4], 'dis'), redis.call('HGET', KEYS[1], 'roles')}
if u[1] ~= '0' or not u[2] then revoke() return {'invalid'} end
-- Channel binding: a cookie token is refused in a body and vice versa.
if s[3] ~= ARGV[4] then return {'invalid'} end
-- A token of another client's session is refused before anything changes (RFC 6749 §6).
local client = s[5] or ''
if ARGV[12] == '1' and client ~= ARGV[13] then return {'invalid'} end
local now, exp, abs = tonumber(ARGV[7]), tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or '0'), tonumber(s[4])
if now >= exp then revoke() return {'invalid'} end
local grace = tonumber(ARGV[9])
if h == s[2] then
  local newExp = math.min(now + tonumber(ARGV[8]), abs)
  redis.call('HSET', KEYS[3], 'c', short(ARGV[5]), 'l', int(now), 'i', ARGV[10], 'u', ua1(ARGV[11]), 'v', ua2(ARGV[11]))
  if grace > 0 then
    local late = s[8] == '1' and '1' or '0'
    redis.call('HSET', KEYS[3], 'g', h .. ARGV[6] .. late .. int(now))
    if s[8] then redis.call('HDEL', KEYS[3], 'd') end
  else
    redis.call('HDEL', KEYS[3], 'g', 'd')
  end
  redis.call('PEXPIRE', KEYS[3], int(newExp - now))
  redis.call('ZADD', KEYS[2], int(newExp), ARGV[1])
  if redis.call('PTTL', KEYS[2]) < newExp - now then redis.call('PEXPIRE', KEYS[2], int(newExp - now)) end
  return {'rotated', tag(mk, ARGV[5]), int(newExp), int(abs), u[2], '', client, s[6]}
end
-- Only the immediately previous token gets grace, and only while its successor has never been presented:
-- every rotation overwrites the grace record, so it always describes the token spent last.
local g = s[7]
if grace > 0 and g and string.sub(g, 1, 16) == h then
  local inWindow = now - tonumber(string.sub(g, 40)) < grace
  if inWindow or string.sub(g, 39, 39) == '0' then
    redis.call('HSET', KEYS[3], 'l', int(now), 'i', ARGV[10], 'u', ua1(ARGV[11]), 'v', ua2(ARGV[11]))
    if not inWindow then redis.call('HSET', KEYS[3], 'd', '1') end
    return {'grace', tag(mk, s[2]), int(exp), int(abs), u[2], string.sub(g, 17, 38), client, s[6], inWindow and 0 or 1}
  end
end
revoke()
return {'reused'}
`;

/**
 * KEYS[1] session index, KEYS[2] session hash
 * ARGV[1] session id, ARGV[2] presented secret hash, ARGV[3] presented tag
 * Returns 1 if a session was revoked, 0 if there was none or the token was not minted for it.
 */
export const revokeByTokenLua = `${WRITES}${prelude}
local mk = redis.call('HGET', KEYS[2], 'k')
if not mk or #ARGV[2] ~= 32 or tag(mk, ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
`;

/**
 * KEYS[1] session index, KEYS[2] session hash
 * ARGV[1] session id
 * Returns 1 if the session existed.
 */
export const revokeSessionLua = `${WRITES}
local n = redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return n
`;

/**
 * KEYS[1] user hash, KEYS[2] session index, KEYS[3] user state
 * ARGV[1] now, ARGV[2] '1' to also disable the user
 * Marks revoked-after (never moving it back), deletes every session. Returns the ids of the live ones.
 */
export const revokeAllLua = `${WRITES}${prelude}
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local now = tonumber(ARGV[1])
if now > tonumber(redis.call('HGET', KEYS[3], 'ra') or '0') then redis.call('HSET', KEYS[3], 'ra', int(now)) end
if ARGV[2] == '1' then redis.call('HSET', KEYS[3], 'dis', '1') end
local base = string.sub(KEYS[2], 1, -3)
local revoked = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('DEL', base .. 's:' .. sid) == 1 then table.insert(revoked, sid) end
end
redis.call('DEL', KEYS[2])
return revoked
`;

/**
 * KEYS[1] session index
 * ARGV[1] now
 * Returns {{sid, ct, lu, exp, abs, ip, ua, channel}, ...} for live sessions.
 */
export const listSessionsLua = `${READS}
local base = string.sub(KEYS[1], 1, -3)
local out = {}
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES')
for n = 1, #live, 2 do
  local sid = live[n]
  local f = redis.call('HMGET', base .. 's:' .. sid, 't', 'l', 'a', 'i', 'u', 'v', 'h')
  if f[1] then table.insert(out, {sid, f[1], f[2], live[n + 1], f[3], f[4] or '', (f[5] or '') .. (f[6] or ''), f[7] or 'b'}) end
end
return out
`;

/**
 * The incident switch (RedisStore.revokeEveryone). Only moves a mark forward; kept as long as a session
 * created before it could live.
 * KEYS[1] global
 * ARGV[1] field (ra, or ra:<role>), ARGV[2] revoked-after (ms), ARGV[3] how long to keep the mark (ms)
 */
export const revokeEveryoneLua = `${WRITES}${prelude}
local at = tonumber(ARGV[2])
if at > tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') then redis.call('HSET', KEYS[1], ARGV[1], int(at)) end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
`;

/**
 * Spends a password-reset token: once, and only before it expires; wrong guesses are counted and, past
 * the limit, kill it (so its 256 bits need not be the only defence).
 * KEYS[1] reset key
 * ARGV[1] presented SHA-256, ARGV[2] now, ARGV[3] failures allowed
 * Returns 1 if the token matched (and is now gone), else 0.
 */
export const consumeResetLua = `${WRITES}
local r = redis.call('HMGET', KEYS[1], 'h', 'e')
if not r[1] then return 0 end
if tonumber(r[2]) <= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) return 0 end
if r[1] == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
if redis.call('HINCRBY', KEYS[1], 'n', 1) >= tonumber(ARGV[3]) then redis.call('DEL', KEYS[1]) end
return 0
`;
