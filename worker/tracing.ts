/**
 * Optional OpenTelemetry tracing (off by default): with `OTEL_TRACES_EXPORTER=otlp`, the worker
 * traces every workflow and activity it runs through `@temporalio/interceptors-opentelemetry`
 * (spans `RunWorkflow:<type>`, `StartActivity:<step>`, `RunActivity:<step>`, linked across the
 * worker and the client by the headers Temporal carries) and exports them over OTLP/HTTP to
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (or `OTEL_EXPORTER_OTLP_ENDPOINT` + /v1/traces), the
 * standard OpenTelemetry variables (`OTEL_SERVICE_NAME`, default `etcd-steward-worker`;
 * `OTEL_EXPORTER_OTLP_HEADERS` for a collector that wants a token). Workflow spans leave the
 * sandbox through a sink, replay-safe.
 */
import { trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryActivityInboundInterceptor, OpenTelemetryActivityOutboundInterceptor, makeWorkflowExporter } from '@temporalio/interceptors-opentelemetry/lib/worker';
import type { WorkerOptions } from '@temporalio/worker';

/** The workflow-side interceptors module (bundled with the workflows when tracing is on). */
export const OTEL_WORKFLOW_INTERCEPTORS = require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/** True when the environment asks for traces (`OTEL_TRACES_EXPORTER=otlp`). */
export function tracingWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.OTEL_TRACES_EXPORTER ?? 'none').split(',').map((s) => s.trim()).includes('otlp');
}

export interface Tracing {
  /** Worker options that trace workflows and activities (merged into Worker.create's). */
  workerOptions: Pick<WorkerOptions, 'sinks'> & { interceptors: { workflowModules: string[]; activity: NonNullable<NonNullable<WorkerOptions['interceptors']>['activity']> } };
  /** Sends what is buffered and stops (the worker's shutdown). */
  shutdown(): Promise<void>;
}

/** Sets up the tracer provider (global) and the exporter; call once, when tracingWanted(). */
export function startTracing(env: NodeJS.ProcessEnv = process.env): Tracing {
  const resource = new Resource({ 'service.name': env.OTEL_SERVICE_NAME || 'etcd-steward-worker' });
  const processor: SpanProcessor = new BatchSpanProcessor(new OTLPTraceExporter());
  const provider = new BasicTracerProvider({ resource, spanProcessors: [processor] });
  trace.setGlobalTracerProvider(provider);
  return {
    workerOptions: {
      sinks: { exporter: makeWorkflowExporter(processor, resource) },
      interceptors: {
        workflowModules: [OTEL_WORKFLOW_INTERCEPTORS],
        activity: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx), outbound: new OpenTelemetryActivityOutboundInterceptor(ctx) })],
      },
    },
    shutdown: () => provider.shutdown(),
  };
}
