/**
 * The load generator, run as its own process so it does not share a CPU budget with the server's event
 * loop. Reads a LoadSpec (JSON) from argv, drives `concurrency` closed-loop clients for `durationMs`,
 * prints one LoadResult (JSON) on stdout.
 */
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';

export type LoadKind = 'get' | 'verify' | 'login' | 'refresh-latchkey' | 'refresh-form';

export interface LoadSpec {
  kind: LoadKind;
  /** One origin per server; clients are spread over them round-robin. */
  origins: string[];
  path: string;
  concurrency: number;
  durationMs: number;
  /**
   * Refresh kinds: one starting refresh token per client. verify: the access tokens presented, each
   * client walking the list from its own offset, so every token comes back again and again.
   */
  tokens?: string[];
  /** login: the JSON body to post. */
  body?: string;
  /** refresh-form (the OAuth token endpoint's form): client credentials, if the server wants them. */
  client?: { id: string; secret: string };
}

export interface LoadResult {
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
  max: number;
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const pools = spec.origins.map((o) => new Pool(o, { connections: Math.ceil(spec.concurrency / spec.origins.length) + 1 }));
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + spec.durationMs;

  async function client(i: number): Promise<void> {
    const pool = pools[i % pools.length]!;
    let token = spec.tokens?.[i];
    let sent = 0;
    while (performance.now() < deadline) {
      const started = performance.now();
      let ok = false;
      try {
        if (spec.kind === 'get') {
          const res = await pool.request({ method: 'GET', path: spec.path });
          await res.body.arrayBuffer();
          ok = res.statusCode === 200;
        } else if (spec.kind === 'verify') {
          const tokens = spec.tokens!;
          const res = await pool.request({ method: 'GET', path: spec.path, headers: { authorization: `Bearer ${tokens[(i + sent++ * spec.concurrency) % tokens.length]}` } });
          await res.body.arrayBuffer();
          ok = res.statusCode === 200;
        } else if (spec.kind === 'login') {
          const res = await pool.request({ method: 'POST', path: spec.path, headers: { 'content-type': 'application/json' }, body: spec.body });
          await res.body.arrayBuffer();
          ok = res.statusCode === 200;
        } else if (spec.kind === 'refresh-latchkey') {
          const res = await pool.request({
            method: 'POST',
            path: spec.path,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ refresh_token: token }),
          });
          const body = (await res.body.json()) as { refresh_token?: string };
          ok = res.statusCode === 200 && !!body.refresh_token;
          if (ok) token = body.refresh_token;
        } else {
          const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token ?? '' });
          if (spec.client) {
            form.set('client_id', spec.client.id);
            form.set('client_secret', spec.client.secret);
          }
          const res = await pool.request({
            method: 'POST',
            path: spec.path,
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: form.toString(),
          });
          const body = (await res.body.json()) as { refresh_token?: string; access_token?: string };
          ok = res.statusCode === 200 && !!body.refresh_token && !!body.access_token;
          if (ok) token = body.refresh_token;
        }
      } catch {
        ok = false;
      }
      if (ok) latencies.push(performance.now() - started);
      else {
        errors++;
        if (spec.kind.startsWith('refresh')) return; // a client whose token is lost cannot go on
      }
    }
  }

  const started = performance.now();
  await Promise.all(Array.from({ length: spec.concurrency }, (_, i) => client(i)));
  const elapsed = performance.now() - started;
  await Promise.all(pools.map((p) => p.close()));
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? 0;
  return {
    requests: latencies.length,
    errors,
    rps: (latencies.length * 1000) / elapsed,
    p50: pct(50),
    p99: pct(99),
    max: latencies[latencies.length - 1] ?? 0,
  };
}

// The spec as JSON, or `@file` holding it.
const arg = process.argv[2] ?? '{}';
const spec = JSON.parse(arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg) as LoadSpec;
run(spec).then(
  (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
  (err: unknown) => {
    process.stderr.write(`load: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
