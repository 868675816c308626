/**
 * The AdmissionReview the benches send: the captured `kubectl apply` review, turned into a
 * ReplicaSet-style pod (generateName, so every admission places a new pod, as in a rollout)
 * asking for a small share of a GPU.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export interface BenchReview {
  request: { name?: string; operation?: string; object: { metadata: { name?: string; generateName?: string; annotations: Record<string, string> } } };
}

/** The review as an object (to derive variants from) and as the body the benches post. */
export async function benchReview(repoRoot: string): Promise<{ review: BenchReview; body: string }> {
  const captured = await readFile(path.join(repoRoot, 'e2e/testdata/v1-pod-create-kubectl.json.txt'), 'utf8');
  // The first line of the file names its source.
  const review = JSON.parse(captured.split('\n').slice(1).join('\n')) as BenchReview;
  delete review.request.name;
  delete review.request.object.metadata.name;
  review.request.object.metadata.generateName = 'echo-pod-';
  review.request.object.metadata.annotations['mps-injector.io/gpu-memory'] = '512Mi';
  review.request.object.metadata.annotations['mps-injector.io/gpu-percent'] = '1';
  return { review, body: JSON.stringify(review) };
}
