import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PACKAGE_NAME, VersionError, findPackageManifest, packageVersion, versionFromManifestText } from './version.js';
import { SEMVER_PATTERN, findVersionDrift } from './versionDrift.js';
import type { VersionSources } from './versionDrift.js';

const run = promisify(execFile);
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const chartDir = join(repoRoot, 'charts', 'mps-injector');
const setVersionScript = join(repoRoot, 'scripts', 'set-version.mjs');

function readRepo(...parts: string[]): string {
  return readFileSync(join(repoRoot, ...parts), 'utf8');
}

function chartTemplates(): Map<string, string> {
  const dir = join(chartDir, 'templates');
  const templates = new Map<string, string>();
  if (!existsSync(dir)) return templates;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) templates.set(entry.name, readFileSync(join(entry.parentPath, entry.name), 'utf8'));
  }
  return templates;
}

describe('the version this program reports', () => {
  const manifest = JSON.parse(readRepo('package.json')) as { name: string; version: string };

  test('is package.json "version", a semantic version', () => {
    expect(manifest.name).toBe(PACKAGE_NAME);
    expect(packageVersion()).toBe(manifest.version);
    expect(manifest.version).toMatch(SEMVER_PATTERN);
  });

  test('is found from a build folder two levels under the package (dist/version/)', () => {
    const files = new Map([
      ['/pkg/package.json', JSON.stringify({ name: PACKAGE_NAME, version: '3.4.5' })],
      ['/pkg/dist/package.json', JSON.stringify({ type: 'module' })],
    ]);
    const found = findPackageManifest('/pkg/dist/version', (path) => files.get(path));
    expect(found.path).toBe('/pkg/package.json');
    expect(versionFromManifestText(found.text, found.path)).toBe('3.4.5');
  });

  test('skips a manifest of another package on the way up (an installing project)', () => {
    const files = new Map([
      ['/app/package.json', JSON.stringify({ name: 'someone-else', version: '9.9.9' })],
      ['/app/node_modules/mps-injector/package.json', JSON.stringify({ name: PACKAGE_NAME, version: '1.0.0' })],
    ]);
    const found = findPackageManifest('/app/node_modules/mps-injector/dist/version', (path) => files.get(path));
    expect(versionFromManifestText(found.text, found.path)).toBe('1.0.0');
  });

  test('says where it looked when no manifest is found', () => {
    expect(() => findPackageManifest('/nowhere/dist/version', () => undefined)).toThrow(VersionError);
    expect(() => findPackageManifest('/nowhere/dist/version', () => undefined)).toThrow(/no package.json named "mps-injector" in \/nowhere\/dist\/version/);
  });

  test('rejects a manifest without a usable version', () => {
    expect(() => versionFromManifestText('{"name":"mps-injector"}', 'x/package.json')).toThrow(/x\/package.json has no "version"/);
    expect(() => versionFromManifestText('{not json', 'x/package.json')).toThrow(/cannot parse x\/package.json/);
  });
});

describe('version drift between package.json, the chart and the changelog', () => {
  test('the repository has none', () => {
    const manifest = JSON.parse(readRepo('package.json')) as { version: string };
    const lock = JSON.parse(readRepo('package-lock.json')) as { version: string; packages: Record<string, { version?: string }> };
    expect(existsSync(join(chartDir, 'Chart.yaml'))).toBe(true);
    const problems = findVersionDrift({
      packageVersion: manifest.version,
      chartYaml: readFileSync(join(chartDir, 'Chart.yaml'), 'utf8'),
      valuesYaml: readFileSync(join(chartDir, 'values.yaml'), 'utf8'),
      templates: chartTemplates(),
      changelog: readRepo('CHANGELOG.md'),
    });
    expect(problems).toEqual([]);
    expect(lock.version).toBe(manifest.version);
    expect(lock.packages['']?.version).toBe(manifest.version);
  });

  const agreeing: VersionSources = {
    packageVersion: '1.2.3',
    chartYaml: 'apiVersion: v2\nname: mps-injector\nversion: 1.2.3\nappVersion: "1.2.3"\n',
    valuesYaml: 'image:\n  repository: ghcr.io/example/mps-injector\n  tag: ""\n',
    templates: new Map([['deployment.yaml', 'image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"']]),
    changelog: '# Changelog\n\n## [Unreleased]\n\n## [1.2.3] - 2026-01-01\n',
  };

  test('agreeing sources give no problem', () => {
    expect(findVersionDrift(agreeing)).toEqual([]);
    expect(findVersionDrift({ ...agreeing, valuesYaml: 'image:\n  tag: 1.2.3\n', templates: new Map() })).toEqual([]);
  });

  test('a Chart.yaml appVersion or version that disagrees is reported', () => {
    const problems = findVersionDrift({ ...agreeing, chartYaml: 'version: 1.2.2\nappVersion: "1.2.4"\n' });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/Chart.yaml version is 1.2.2 but package.json says 1.2.3; run `node scripts\/set-version.mjs/);
    expect(problems[1]).toMatch(/Chart.yaml appVersion is 1.2.4/);
  });

  test('a missing appVersion is reported', () => {
    expect(findVersionDrift({ ...agreeing, chartYaml: 'version: 1.2.3\n' })).toEqual([expect.stringMatching(/Chart.yaml appVersion is missing/)]);
  });

  test('a pinned values image.tag that disagrees is reported', () => {
    expect(findVersionDrift({ ...agreeing, valuesYaml: 'image:\n  tag: "1.2.0"\n' })).toEqual([
      expect.stringMatching(/values.yaml image.tag is 1.2.0 but package.json says 1.2.3/),
    ]);
  });

  test('an empty image.tag needs a template that defaults it to appVersion', () => {
    const noFallback = new Map([['deployment.yaml', 'image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"']]);
    expect(findVersionDrift({ ...agreeing, templates: noFallback })).toEqual([expect.stringMatching(/no chart template defaults it to .Chart.AppVersion/)]);
    const helperStyle = new Map([['_helpers.tpl', '{{- $tag := default .Chart.AppVersion .Values.image.tag -}}']]);
    expect(findVersionDrift({ ...agreeing, templates: helperStyle })).toEqual([]);
  });

  test('a changelog without a section for the version is reported', () => {
    expect(findVersionDrift({ ...agreeing, changelog: '## [Unreleased]\n## [1.2.30]\n' })).toEqual([expect.stringMatching(/CHANGELOG.md has no "## \[1.2.3\]" section/)]);
  });

  test('a package version that is not semver is reported', () => {
    const problems = findVersionDrift({ ...agreeing, packageVersion: 'v1.2' });
    expect(problems[0]).toMatch(/package.json version "v1.2" is not a semantic version/);
  });
});

describe('scripts/set-version.mjs', () => {
  let root: string;
  const chartYaml = [
    '# The mps-injector chart.',
    'apiVersion: v2',
    'name: mps-injector',
    'description: MPS slot injector',
    'type: application',
    '# Chart and app move together.',
    'version: 0.1.0',
    'appVersion: "0.1.0"  # the image tag by default',
    'kubeVersion: ">=1.27.0-0"',
    '',
  ].join('\n');
  const pinnedValues = ['image:', '  repository: ghcr.io/example/mps-injector', '  # pinned for this release', "  tag: '0.1.0'", '  pullPolicy: IfNotPresent', 'replicaCount: 2', ''].join('\n');

  function writeFixture(values: string): void {
    mkdirSync(join(root, 'charts', 'mps-injector'), { recursive: true });
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: PACKAGE_NAME, version: '0.1.0', type: 'module' }, null, 2) + '\n');
    writeFileSync(
      join(root, 'package-lock.json'),
      JSON.stringify({ name: PACKAGE_NAME, version: '0.1.0', lockfileVersion: 3, packages: { '': { name: PACKAGE_NAME, version: '0.1.0' } } }, null, 2) + '\n',
    );
    writeFileSync(join(root, 'charts', 'mps-injector', 'Chart.yaml'), chartYaml);
    writeFileSync(join(root, 'charts', 'mps-injector', 'values.yaml'), values);
  }

  function read(...parts: string[]): string {
    return readFileSync(join(root, ...parts), 'utf8');
  }

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'set-version-'));
  });
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  test('writes package.json, the lock file, Chart.yaml and a pinned values tag, and changes nothing else', async () => {
    writeFixture(pinnedValues);
    const { stdout } = await run(process.execPath, [setVersionScript, '0.2.0-rc.1', '--root', root]);
    expect(stdout).toMatch(/package.json version 0.1.0 -> 0.2.0-rc.1/);

    expect(JSON.parse(read('package.json'))).toEqual({ name: PACKAGE_NAME, version: '0.2.0-rc.1', type: 'module' });
    const lock = JSON.parse(read('package-lock.json')) as { version: string; packages: Record<string, { version: string }> };
    expect(lock.version).toBe('0.2.0-rc.1');
    expect(lock.packages['']?.version).toBe('0.2.0-rc.1');
    expect(read('package.json').endsWith('}\n')).toBe(true);

    expect(read('charts', 'mps-injector', 'Chart.yaml')).toBe(
      chartYaml.replace('version: 0.1.0', 'version: 0.2.0-rc.1').replace('appVersion: "0.1.0"', 'appVersion: "0.2.0-rc.1"'),
    );
    expect(read('charts', 'mps-injector', 'values.yaml')).toBe(pinnedValues.replace("tag: '0.1.0'", "tag: '0.2.0-rc.1'"));

    const drift = findVersionDrift({
      packageVersion: '0.2.0-rc.1',
      chartYaml: read('charts', 'mps-injector', 'Chart.yaml'),
      valuesYaml: read('charts', 'mps-injector', 'values.yaml'),
      templates: new Map(),
      changelog: '## [0.2.0-rc.1]\n',
    });
    expect(drift).toEqual([]);
  });

  test('leaves an empty image tag alone (the chart falls back to appVersion)', async () => {
    const values = 'image:\n  repository: ghcr.io/example/mps-injector\n  tag: ""\n';
    writeFixture(values);
    const { stdout } = await run(process.execPath, [setVersionScript, '1.0.0', '--root', root]);
    expect(stdout).toMatch(/image.tag is empty/);
    expect(read('charts', 'mps-injector', 'values.yaml')).toBe(values);
    expect(read('charts', 'mps-injector', 'Chart.yaml')).toMatch(/^appVersion: "1.0.0"/m);
  });

  test.each([['v1.0.0'], ['1.0'], ['latest']])('refuses %s and writes nothing', async (bad) => {
    writeFixture(pinnedValues);
    await expect(run(process.execPath, [setVersionScript, bad, '--root', root])).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/set-version: /) });
    expect(JSON.parse(read('package.json')).version).toBe('0.1.0');
    expect(read('charts', 'mps-injector', 'Chart.yaml')).toBe(chartYaml);
  });

  test('refuses to bump the package without a chart, and writes nothing', async () => {
    writeFixture(pinnedValues);
    rmSync(join(root, 'charts'), { recursive: true });
    await expect(run(process.execPath, [setVersionScript, '0.3.0', '--root', root])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/no chart at .*Chart.yaml; the chart's version moves with the package/),
    });
    expect(JSON.parse(read('package.json')).version).toBe('0.1.0');
  });
});
