import { createRequire } from 'node:module';
import { SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';
import type { FastifyOtelInstrumentation } from '@fastify/otel';
import type { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import type { SpanExporter } from '@opentelemetry/sdk-trace-node';

/**
 * OpenTelemetry traces, off unless configured (config.ts: OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set, OTEL_SDK_DISABLED not true). The exporter reads the other
 * standard OTEL_EXPORTER_OTLP_* variables (headers, protocol details) itself.
 *
 * Spans: the route (@fastify/otel), every Redis command (ioredis instrumentation) inside a span per store
 * call (`store lkRotate`, ...), the access-token signature and the password hash. No attribute carries a
 * token, a password, an e-mail address or a query string: Redis spans name the command only, never its
 * arguments (which hold token hashes, e-mail hashes, user agents); routes give their path without query.
 *
 * Only @opentelemetry/api is loaded unless tracing starts: the SDK and the exporter are imported then.
 */

const tracer = trace.getTracer('latchkey');
/** Whether startTracing runs in this process. */
let active = false;

/**
 * Runs `work` in a span. With tracing off it is `work()` itself: even the API's no-op tracer costs a
 * context switch, a closure and a promise per call, on the store calls every request makes.
 * `attributes` must never hold a secret or a personal detail.
 */
export function traced<T>(name: string, work: () => Promise<T>, attributes?: Attributes): Promise<T> {
  if (!active) return work();
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work();
    } catch (err) {
      // The error's class only: messages can quote input.
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).name });
      throw err;
    } finally {
      span.end();
    }
  });
}

export interface Tracing {
  /** Registered on the app by buildApp: one span per request, named by route. */
  fastify: FastifyOtelInstrumentation;
  /** Flushes and stops; spans after this are dropped. */
  shutdown(): Promise<void>;
}

/**
 * Starts tracing for this process and makes it the global tracer provider. `exporter` replaces OTLP
 * (tests pass an in-memory one; its spans are then exported at once instead of in batches).
 */
export async function startTracing(options: { serviceName: string; exporter?: SpanExporter }): Promise<Tracing> {
  const [{ BatchSpanProcessor, NodeTracerProvider, SimpleSpanProcessor }, { resourceFromAttributes }, { FastifyOtelInstrumentation }, { IORedisInstrumentation }] =
    await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/resources'),
      import('@fastify/otel'),
      import('@opentelemetry/instrumentation-ioredis'),
    ]);
  const exporter = options.exporter ?? new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();
  const processor = options.exporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName }),
    spanProcessors: [processor],
  });
  provider.register();
  active = true;

  const fastify = new FastifyOtelInstrumentation({
    // request.url carries the query string; the span keeps the path only.
    requestHook: (span, request) => span.setAttribute('url.path', request.url.split('?')[0] ?? ''),
  });
  fastify.setTracerProvider(provider);

  const redis = new IORedisInstrumentation({
    // The command's name only: arguments hold token hashes, e-mail hashes, user agents and addresses.
    dbStatementSerializer: (command) => command,
    requireParentSpan: true,
    // No require hook: see patchIoredis.
    enabled: false,
  });
  redis.setTracerProvider(provider);
  const unpatch = patchIoredis(redis);

  return {
    fastify,
    async shutdown() {
      active = false;
      unpatch();
      await provider.shutdown();
      trace.disable();
    },
  };
}

/**
 * OpenTelemetry instruments a module when it is `require`d; latchkey is ESM, which loads ioredis without
 * that hook (short of a loader flag at start). The instrumentation wraps `Redis.prototype.sendCommand`, which
 * every client — Cluster nodes and Sentinel masters included — shares, so it is applied here directly to the
 * one ioredis this process loaded, whenever that happened.
 */
function patchIoredis(instrumentation: IORedisInstrumentation): () => void {
  const require = createRequire(import.meta.url);
  const ioredis: unknown = require('ioredis');
  const version = (require('ioredis/package.json') as { version: string }).version;
  const definitions = instrumentation.getModuleDefinitions();
  for (const definition of definitions) definition.patch?.(ioredis, version);
  return () => {
    for (const definition of definitions) definition.unpatch?.(ioredis, version);
  };
}
