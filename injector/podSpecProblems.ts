/**
 * Checks an API server would make of a pod spec that JSON schema cannot: unique names, mounts that
 * point at volumes, one mount per path. Used to prove an injected pod is still admissible.
 * Pure: a pod in, problems out.
 */
import type { Container, Pod } from 'kubernetes-types/core/v1.js';

/** Problems that would make the API server reject the pod; [] when there are none. */
export function podSpecProblems(pod: Pod): string[] {
  const problems: string[] = [];
  const spec = pod.spec;
  if (spec === undefined) return ['pod has no spec'];

  const volumeNames = new Set<string>();
  for (const v of spec.volumes ?? []) {
    if (volumeNames.has(v.name)) problems.push(`volume name "${v.name}" is used twice`);
    volumeNames.add(v.name);
  }

  const all: [string, Container][] = [
    ...(spec.initContainers ?? []).map((c): [string, Container] => ['init container', c]),
    ...spec.containers.map((c): [string, Container] => ['container', c]),
  ];
  if (spec.containers.length === 0) problems.push('pod has no containers');
  const containerNames = new Set<string>();
  for (const [kind, c] of all) {
    if (containerNames.has(c.name)) problems.push(`container name "${c.name}" is used twice`);
    containerNames.add(c.name);
    const paths = new Set<string>();
    for (const m of c.volumeMounts ?? []) {
      if (!volumeNames.has(m.name)) problems.push(`${kind} "${c.name}" mounts volume "${m.name}", which the pod does not define`);
      const path = m.mountPath.replace(/\/+$/, '') || '/';
      if (paths.has(path)) problems.push(`${kind} "${c.name}" mounts two volumes at ${m.mountPath}`);
      paths.add(path);
    }
  }
  return problems;
}
