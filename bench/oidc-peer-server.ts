/**
 * The peer for the refresh benchmark: panva's oidc-provider, configured as comparably as it allows —
 * refresh-token rotation always on, RS256 JWT access tokens of 15 minutes (resource indicators), storage in
 * Redis through a small adapter. A bench-only route mints refresh tokens directly (the browser login and
 * consent flow that would normally precede them is not what is measured).
 */
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { Redis } from 'ioredis';
import { exportJWK } from 'jose';
import Provider from 'oidc-provider';

const redis = new Redis(process.argv[2] ?? 'redis://127.0.0.1:6379');
const PREFIX = 'oidcbench:';
const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

/** oidc-provider's adapter contract, on Redis: JSON payloads with a TTL, and a grant index for revocation. */
class RedisAdapter {
  constructor(private readonly model: string) {}
  private key(id: string) {
    return `${PREFIX}${this.model}:${id}`;
  }
  async upsert(id: string, payload: Record<string, unknown>, expiresIn: number) {
    const multi = redis.multi();
    multi.set(this.key(id), JSON.stringify(payload), 'EX', Math.max(1, expiresIn));
    if (grantable.has(this.model) && typeof payload.grantId === 'string') {
      const grantKey = `${PREFIX}grant:${payload.grantId}`;
      multi.rpush(grantKey, this.key(id));
      multi.expire(grantKey, Math.max(1, expiresIn));
    }
    if (typeof payload.uid === 'string') multi.set(`${PREFIX}uid:${payload.uid}`, id, 'EX', Math.max(1, expiresIn));
    await multi.exec();
  }
  async find(id: string) {
    const data = await redis.get(this.key(id));
    return data ? (JSON.parse(data) as Record<string, unknown>) : undefined;
  }
  async findByUid(uid: string) {
    const id = await redis.get(`${PREFIX}uid:${uid}`);
    return id ? this.find(id) : undefined;
  }
  async findByUserCode() {
    return undefined;
  }
  async consume(id: string) {
    const data = await this.find(id);
    if (data) await redis.set(this.key(id), JSON.stringify({ ...data, consumed: Math.floor(Date.now() / 1000) }), 'KEEPTTL');
  }
  async destroy(id: string) {
    await redis.del(this.key(id));
  }
  async revokeByGrantId(grantId: string) {
    const grantKey = `${PREFIX}grant:${grantId}`;
    const keys = await redis.lrange(grantKey, 0, -1);
    if (keys.length) await redis.del(...keys);
    await redis.del(grantKey);
  }
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...(await exportJWK(privateKey)), kid: 'bench', alg: 'RS256', use: 'sig' };
const port = Number(process.argv[3] ?? 0) || 0;
const server = createServer();
await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

const provider = new Provider(origin, {
  adapter: RedisAdapter as never,
  clients: [
    {
      client_id: 'bench',
      client_secret: 'bench-secret',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: ['https://rp.example/cb'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  jwks: { keys: [jwk as never] },
  scopes: ['openid', 'offline_access', 'api'],
  rotateRefreshToken: true,
  issueRefreshToken: async () => true,
  ttl: { AccessToken: 900, RefreshToken: 7 * 86_400, Grant: 30 * 86_400, Session: 30 * 86_400, Interaction: 3600, IdToken: 900 },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:bench:api',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: 'urn:bench:api',
        accessTokenTTL: 900,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
} as never);

const callback = provider.callback();
let minted = 0;
server.on('request', (req, res) => {
  if (req.url?.startsWith('/bench/tokens')) {
    const n = Number(new URL(req.url, origin).searchParams.get('n') ?? 1);
    void (async () => {
      const client = await provider.Client.find('bench');
      const tokens: string[] = [];
      for (let i = 0; i < n; i++) {
        const accountId = `user-${++minted}`;
        const grant = new provider.Grant({ accountId, clientId: 'bench' });
        grant.addOIDCScope('offline_access');
        grant.addResourceScope('urn:bench:api', 'api');
        const grantId = await grant.save();
        const rt = new provider.RefreshToken({
          client,
          accountId,
          grantId,
          gty: 'authorization_code',
          scope: 'offline_access api',
          resource: 'urn:bench:api',
          authTime: Math.floor(Date.now() / 1000),
          expiresWithSession: false,
          sessionUid: `s-${minted}`,
        } as never);
        tokens.push(await rt.save());
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(tokens));
    })().catch((err: Error) => {
      res.statusCode = 500;
      res.end(err.stack);
    });
    return;
  }
  callback(req, res);
});
process.stdout.write(`oidc-provider listening on ${origin}\n`);
