/**
 * A trace: pod arrivals and departures to replay against a simulated cluster.
 * Pure: parsing text into a validated Trace; reading files is the caller's business.
 */
import { z } from 'zod';
import { Priority } from '../domain/slot.js';

const tracePodSchema = z
  .object({
    /** Unique within the trace. */
    id: z.string().min(1),
    /** Seconds from the start of the trace when the pod is created (admission time). */
    arrivalS: z.number().min(0),
    /** Seconds the pod runs from admission until it is deleted. */
    durationS: z.number().positive(),
    /** Device memory the pod needs once loaded, MiB (its gpu-memory annotation). */
    memoryMiB: z.number().int().positive(),
    /** Compute share it asks for, 1..100 (its gpu-percent annotation); its real demand follows it with noise. */
    computePercent: z.number().int().min(1).max(100),
    priority: z.enum([Priority.High, Priority.Low]),
    /** Free-text workload class ("llm-large", "vision-small", ...), for reports. */
    workload: z.string().min(1),
    /** Substring the GPU model must contain, or null. */
    gpuModel: z.string().min(1).nullable().default(null),
    /** LLM servers: the part of memoryMiB that is KV cache, which fills after the weights have loaded. */
    kvCacheMiB: z.number().int().min(0).optional(),
    /** Seconds the KV cache takes to fill, from the end of the weight load (0: at once, as a server that preallocates it). */
    kvGrowthS: z.number().min(0).optional(),
    /**
     * Bursty requests: time is cut into windows of windowS; each window is a burst with
     * probability `share` and carries `factor` times the mean load; the other windows carry
     * less, so the mean stays the asked share (share x factor must stay below 1).
     */
    burst: z
      .object({ windowS: z.number().positive(), share: z.number().gt(0).lt(1), factor: z.number().min(1) })
      .strict()
      .refine((b) => b.share * b.factor < 1, { message: 'share x factor must be below 1, so the windows outside a burst keep a positive load' })
      .optional(),
  })
  .strict()
  .refine((pod) => pod.kvCacheMiB === undefined || pod.kvCacheMiB <= pod.memoryMiB, { message: 'kvCacheMiB is part of memoryMiB and cannot exceed it', path: ['kvCacheMiB'] });

const traceSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().default(''),
    /** How the trace was made, so it can be made again. */
    generator: z
      .object({ kind: z.string(), seed: z.number().int(), version: z.number().int() })
      .strict()
      .nullable()
      .default(null),
    pods: z.array(tracePodSchema).min(1),
  })
  .strict();

export type TracePod = z.infer<typeof tracePodSchema>;
export type Trace = z.infer<typeof traceSchema>;

/** A trace file that cannot be used; the message names the file, the field and the fix. */
export class TraceError extends Error {
  override readonly name = 'TraceError';
}

/** Validate a parsed object into a Trace: unique pod ids, sorted by arrival (stable). */
export function buildTrace(input: unknown, origin = 'trace'): Trace {
  const result = traceSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.slice(0, 10).map((issue) => `  - ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    throw new TraceError(`invalid trace in ${origin}:\n${lines.join('\n')}\nFix these fields, or make a fresh trace with "mps-injector simulate generate-trace".`);
  }
  const trace = result.data;
  const seen = new Set<string>();
  for (const pod of trace.pods) {
    if (seen.has(pod.id)) throw new TraceError(`invalid trace in ${origin}: pod id "${pod.id}" appears twice; give every pod a unique id`);
    seen.add(pod.id);
  }
  const pods = trace.pods.map((pod, index) => ({ pod, index }));
  pods.sort((a, b) => a.pod.arrivalS - b.pod.arrivalS || a.index - b.index);
  return { ...trace, pods: pods.map((entry) => entry.pod) };
}

/** Parse JSON text into a Trace. */
export function parseTraceText(text: string, origin = 'trace'): Trace {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new TraceError(`cannot parse ${origin} as JSON: ${(err as Error).message}; a trace is a JSON object with "name" and "pods"`);
  }
  return buildTrace(raw, origin);
}

/** Seconds from the trace start until its last pod departs. */
export function traceEndS(trace: Trace): number {
  let end = 0;
  for (const pod of trace.pods) end = Math.max(end, pod.arrivalS + pod.durationS);
  return end;
}

/** JSON text of a trace with one pod per line: diffable, and a third of the indented size. */
export function formatTraceJson(trace: Trace): string {
  const { pods, ...head } = trace;
  const headLines = Object.entries(head).map(([key, value]) => `  ${JSON.stringify(key)}: ${JSON.stringify(value)},`);
  const podLines = pods.map((pod, i) => `    ${JSON.stringify(pod)}${i === pods.length - 1 ? '' : ','}`);
  return `{\n${headLines.join('\n')}\n  "pods": [\n${podLines.join('\n')}\n  ]\n}\n`;
}
