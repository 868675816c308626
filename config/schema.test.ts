import { ConfigError, buildConfig, defaultConfig, parseConfigText } from './schema.js';

test('every field has a default', () => {
  const config = defaultConfig();
  expect(config.server.port).toBe(8443);
  expect(config.server.maxBodyBytes).toBe(3 * 1024 * 1024);
  expect(config.placement.policy).toBe('binpack');
  expect(config.placement.maxClientsPerGpu).toBe(48);
  expect(config.failure).toEqual({ onNoFit: 'reject', onNoMetrics: 'reject' });
  expect(config.injection.initContainer.timeoutSeconds).toBeGreaterThan(0);
});

test('YAML overrides merge with defaults', () => {
  const config = parseConfigText('placement:\n  policy: spread\nmetrics:\n  source: file\n  file: /tmp/x.prom\n', 'test.yaml');
  expect(config.placement.policy).toBe('spread');
  expect(config.placement.maxMetricsAgeSeconds).toBe(90);
  expect(config.metrics.file).toBe('/tmp/x.prom');
});

test('an unknown key or a wrong type names every bad field and the file', () => {
  let message = '';
  try {
    parseConfigText('placement:\n  polcy: spread\n  maxClientsPerGpu: "many"\n', 'my.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    message = (err as Error).message;
  }
  expect(message).toContain('my.yaml');
  expect(message).toContain('placement');
  expect(message).toContain('polcy');
  expect(message).toContain('placement.maxClientsPerGpu');
});

test('bounds are checked across fields', () => {
  expect(() => buildConfig({ placement: { minThreadPercent: 60, maxThreadPercent: 40 } })).toThrow(/minThreadPercent \(60\) is above placement.maxThreadPercent \(40\)/);
});

test('invalid YAML and non-mapping documents get clear errors', () => {
  expect(() => parseConfigText('server: [\n', 'bad.yaml')).toThrow(/cannot parse bad.yaml as YAML/);
  expect(() => parseConfigText('- a\n- b\n', 'list.yaml')).toThrow(/must be a YAML mapping.*got a list/);
  expect(() => parseConfigText('requests:\n  defaultGpuMemory: lots\n', 'q.yaml')).toThrow(/Kubernetes quantity/);
});

test('transport and MPS access settings: safe defaults, and a cipher list OpenSSL cannot use names the field', () => {
  const config = defaultConfig();
  expect(config.server.clientCAFile).toBe('');
  expect(config.server.tlsMinVersion).toBe('TLSv1.2');
  expect(config.server.tlsCiphers.split(':').every((suite) => suite.startsWith('TLS_') || suite.startsWith('ECDHE-'))).toBe(true);
  expect(config.injection.mpsAccessPolicy).toBe('reject');
  expect(() => parseConfigText('server:\n  tlsCiphers: "NOPE-NOPE"\n', 'tls.yaml')).toThrow(/invalid configuration in tls.yaml:\n {2}- server.tlsCiphers "NOPE-NOPE" is not a cipher list OpenSSL can use/);
  expect(() => parseConfigText('server:\n  tlsMinVersion: TLSv1.1\n', 'tls.yaml')).toThrow(/server.tlsMinVersion/);
  expect(() => parseConfigText('injection:\n  mpsAccessPolicy: warn\n', 'x.yaml')).toThrow(/injection.mpsAccessPolicy/);
});
