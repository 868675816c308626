import { KubeConfig } from '@kubernetes/client-node';

test('the ESM-only Kubernetes client loads under Jest', () => {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser({ name: 'c', server: 'https://127.0.0.1:6443', skipTLSVerify: false }, { name: 'u' });
  expect(kc.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
});
