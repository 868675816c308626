/**
 * Types of the `parse-prometheus-text-format` package (it ships none).
 * Only the parts this project reads are declared.
 */
declare module 'parse-prometheus-text-format' {
  export interface ParsedPrometheusSample {
    value?: string;
    labels?: Record<string, string>;
    timestamp_ms?: string;
  }
  export interface ParsedPrometheusFamily {
    name: string;
    help: string;
    type: string;
    metrics: ParsedPrometheusSample[];
  }
  /** Parses Prometheus text exposition; throws an Error on some malformed lines. */
  export default function parsePrometheusTextFormat(text: string): ParsedPrometheusFamily[];
}
