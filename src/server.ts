import type { Server } from 'node:http';
import closeWithGrace from 'close-with-grace';
import { buildApp, StartupError } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { listenMetrics } from './metrics.js';

/** Entry point: the only place that reads process.env (through loadConfig) and exits the process. */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const app = await buildApp(config);
  let metricsServer: Server | undefined;
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error');
    else app.log.info({ signal }, 'shutting down');
    metricsServer?.close();
    await app.close();
  });
  await app.listen({ host: config.host, port: config.port });
  if (config.metrics) {
    app.latchkey.metrics.collectProcessMetrics();
    metricsServer = await listenMetrics(app.latchkey.metrics, config.metrics.host, config.metrics.port);
    app.log.info({ metrics: `http://${config.metrics.host}:${config.metrics.port}/metrics` }, 'metrics listening');
  }
  app.log.info(
    { issuer: config.issuer, store: app.latchkey.store.kind, keys: app.latchkey.keys.size, env: config.env },
    'latchkey ready',
  );
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof StartupError) {
    process.stderr.write(`latchkey: ${err.message}\n`);
  } else {
    process.stderr.write(`latchkey: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  }
  process.exit(1);
});
