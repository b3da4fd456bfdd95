/**
 * Serves the example single-page app (src/, index.html, app.css) from its own origin: a port other than
 * latchkey's, so every call it makes to latchkey is cross-origin (CORS) yet same-site (the cookie's
 * SameSite=Strict lets it through: sites ignore ports).
 *
 *   npm run spa      # http://127.0.0.1:5173, talking to latchkey on :3000 and the example API on :4000
 *
 * LATCHKEY_URL, API_URL, HOST and PORT change that. latchkey must list this origin in
 * LATCHKEY_ALLOWED_ORIGINS, and the example API in CORS_ORIGINS (README, "Browser apps").
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export interface SpaConfig {
  /** latchkey's URL, base path included, e.g. http://127.0.0.1:3000 or http://127.0.0.1:3000/auth. */
  latchkeyUrl: string;
  /** The resource server the page calls with the access token. */
  apiUrl: string;
}

export interface SpaServer {
  /** This server's origin, e.g. http://127.0.0.1:5173. */
  url: string;
  close(): Promise<void>;
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

/** Bundles src/main.ts for the browser (type annotations stripped; typechecked by `npm run typecheck`). */
async function bundle(): Promise<string> {
  const result = await build({
    entryPoints: [here('src/main.ts')],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

/**
 * Starts the static server. `config` is read on every request, so a test can start this server first and
 * fill in the URLs of servers it starts later.
 */
export async function startSpaServer(options: { config: () => SpaConfig; host?: string; port?: number }): Promise<SpaServer> {
  const [script, html, css] = await Promise.all([bundle(), readFile(here('index.html'), 'utf8'), readFile(here('app.css'), 'utf8')]);
  const server: Server = createServer((req, res) => {
    const config = options.config();
    const connect = [new URL(config.latchkeyUrl).origin, new URL(config.apiUrl).origin].join(' ');
    const files: Record<string, [type: string, body: string]> = {
      '/': ['text/html; charset=utf-8', html],
      '/app.js': ['text/javascript; charset=utf-8', script],
      '/app.css': ['text/css; charset=utf-8', css],
      '/config.json': ['application/json', JSON.stringify(config)],
    };
    const file = req.method === 'GET' ? files[new URL(req.url ?? '/', 'http://x').pathname] : undefined;
    // A strict policy: only this origin's own script runs, and the page talks to latchkey and the API only.
    res.setHeader(
      'content-security-policy',
      `default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ${connect}; ` +
        `base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    );
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    res.setHeader('cache-control', 'no-store');
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': file[0] }).end(file[1]);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const env = process.env;
  const config: SpaConfig = { latchkeyUrl: env.LATCHKEY_URL ?? 'http://127.0.0.1:3000', apiUrl: env.API_URL ?? 'http://127.0.0.1:4000' };
  const spa = await startSpaServer({ config: () => config, host: env.HOST ?? '127.0.0.1', port: Number(env.PORT ?? 5173) });
  process.stdout.write(`example app on ${spa.url} (latchkey ${config.latchkeyUrl}, API ${config.apiUrl})\n`);
}
