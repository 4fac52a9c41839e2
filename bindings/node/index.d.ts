// Types of the edgeroute Node.js binding (index.js).

export type PropertyValue = string | null; // null: a null property, not a missing one

export interface Message {
  body?: Buffer | Uint8Array | string | object; // objects are sent as JSON text
  properties?: Record<string, PropertyValue>;
  systemProperties?: Record<string, string>; // e.g. connectionModuleId, outputName
  source?: string; // e.g. "/messages/modules/m1/outputs/out1"; derived when absent
}

export interface Delivery {
  body: Buffer;
  source: string;
  encoded: Buffer;
  properties: Record<string, PropertyValue>;
  systemProperties: Record<string, string>;
}

export interface Diagnostic {
  severity: 'error' | 'warning';
  message: string;
  routeName: string;
  line: number;
  column: number;
  endColumn: number;
  excerpt: string;
  suggestion: string;
}

export class EdgerouteError extends Error {
  status: number;
  code: string; // "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", ...
  diagnostics: Diagnostic[];
  line: number;
  column: number;
}

export const Outcome: Readonly<{DELIVERED: 0; RETRY: 1; REJECT: 2}>;
export type OutcomeValue = 0 | 1 | 2;

export class Batch {
  readonly endpoint: string;
  readonly priority: number;
  readonly attempt: number;
  readonly length: number;
  message(index: number): Delivery | null;
  messages(): Delivery[];
  ack(index: number, outcome: OutcomeValue): void;
  ackAll(outcome: OutcomeValue): void;
  defer(): void;
}

/** Returns nothing or an outcome (all not yet acknowledged), or a promise:
 * resolved = delivered (or its outcome), rejected = retry. A throw = retry. */
export type Sink = (batch: Batch) => void | OutcomeValue | Promise<void | OutcomeValue>;

export interface RouterOptions {
  storeDirectory?: string;
  durability?: 'process' | 'power';
  storeMaxBytes?: number;
  deviceId?: string;
  dispatchThreads?: number;
  maxBatchSize?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export interface Metrics {
  received: number; orphaned: number; rejectedFull: number; rejectedInvalid: number;
  routeUpdates: number; enqueued: number; delivered: number; retried: number;
  expired: number; rejected: number; dropped: number; queueDepth: number;
  endpoints: number; routes: number;
}

export interface EndpointMetrics {
  enqueued: number; delivered: number; retried: number; expired: number; rejected: number;
  dropped: number; queueDepth: number; oldestMessageAgeUs: number; latencyP50Us: number;
  latencyP99Us: number; hasSink: boolean; dead: boolean;
}

export class Router {
  constructor(manifest: string | object, options?: RouterOptions);
  send(message: Message): void;
  sendEncoded(encoded: Buffer | Uint8Array): void;
  sendBodies(prototype: Message | null, bodies: Array<Buffer | Uint8Array | string>): number;
  setSink(endpoint: string, sink: Sink | null): void;
  updateRoutes(manifest: string | object): void;
  waitIdle(timeoutMs?: number): Promise<void>;
  metrics(): Metrics;
  endpointMetrics(endpoint: string): EndpointMetrics;
  prometheusText(): string;
  close(): Promise<void>;
}

export class Condition {
  constructor(condition: string);
  evaluate(message: Message): boolean | undefined;
  close(): void;
}

export function version(): string;
export function checkRoute(route: string): Diagnostic[];
export function checkManifest(manifest: string | object): Diagnostic[];
export const RELEASE: string;
