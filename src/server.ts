import type { Server } from 'node:http';
import closeWithGrace from 'close-with-grace';
import { buildApp, StartupError } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { listenMetrics } from './metrics.js';
import { startTracing } from './tracing.js';

/** Entry point: the only place that reads process.env (through loadConfig) and exits the process. */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const tracing = config.tracing ? await startTracing(config.tracing) : undefined;
  const app = await buildApp(config, { tracing });
  // Metrics bind first: if their port is taken, the service never starts half-way.
  let metricsServer: Server | undefined;
  if (config.metrics) {
    app.latchkey.metrics.collectProcessMetrics();
    const { host, port } = config.metrics;
    metricsServer = await listenMetrics(app.latchkey.metrics, host, port).catch((err: Error) => {
      throw new StartupError(`cannot serve metrics on ${host}:${port} (${err.message}); set LATCHKEY_METRICS_PORT, or 0 to turn them off`);
    });
  }
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error');
    else app.log.info({ signal }, 'shutting down');
    await Promise.all([
      new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve())),
      app.close(),
    ]);
    await tracing?.shutdown();
  });
  await app.listen({ host: config.host, port: config.port });
  if (config.metrics) app.log.info({ metrics: `http://${config.metrics.host}:${config.metrics.port}/metrics` }, 'metrics listening');
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
