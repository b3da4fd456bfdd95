/** Starts bench/oidc-peer-server.ts on the bench Redis and hands out refresh tokens for load clients. */
export async function startOidcProvider(
  redisUrl: string,
  start: (script: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp) => Promise<RegExpMatchArray>,
): Promise<{ origin: string; tokenPath: string; client: { id: string; secret: string }; refreshTokens(n: number): Promise<string[]> }> {
  const match = await start('bench/oidc-peer-server.ts', [redisUrl], process.env, /listening on (http:\/\/\S+)/);
  const origin = match[1]!;
  return {
    origin,
    tokenPath: '/token',
    client: { id: 'bench', secret: 'bench-secret' },
    async refreshTokens(n: number) {
      const res = await fetch(`${origin}/bench/tokens?n=${n}`);
      if (!res.ok) throw new Error(`minting refresh tokens failed: ${await res.text()}`);
      return (await res.json()) as string[];
    },
  };
}
