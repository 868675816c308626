/** The time limit of one admission's calls to the reservation store. */

/**
 * The signal that ends an admission's store calls after `timeoutMs`, aborting with a
 * TimeoutError as AbortSignal.timeout does. Its timer is cleared as soon as the admission is
 * answered: AbortSignal.timeout would keep a timer, a weak reference and a finalizer alive
 * for the whole timeout, thousands of them under load, all of which outlive the young
 * generation and are collected from the old one.
 */
export function admissionDeadline(timeoutMs: number): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), timeoutMs);
  timer.unref();
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}
