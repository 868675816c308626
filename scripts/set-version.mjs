#!/usr/bin/env node
// The one place to change the release version.
//
//   node scripts/set-version.mjs 0.2.0            # write it everywhere
//   node scripts/set-version.mjs 0.2.0 --root DIR # same, in another checkout
//
// Writes package.json "version" (and package-lock.json's copies of it), the chart's
// Chart.yaml "version" and "appVersion", and values.yaml "image.tag" when that pins a tag
// (an empty tag means "use the chart's appVersion" and is left alone). YAML files are
// edited in place: only the version scalars change, comments and layout stay as they were.
// version/versionConsistency.test.ts fails when these disagree.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, parseDocument } from 'yaml';

const CHART_DIR = join('charts', 'mps-injector');

// Semantic Versioning 2.0.0, without a leading "v".
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

class UsageError extends Error {}

function parseArgs(argv) {
  let version;
  let root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--root') {
      const value = argv[i + 1];
      if (value === undefined) throw new UsageError('--root needs a folder');
      root = resolve(value);
      i += 1;
    } else if (arg === '-h' || arg === '--help') {
      throw new UsageError('');
    } else if (version === undefined) {
      version = arg;
    } else {
      throw new UsageError(`unexpected argument "${arg}"`);
    }
  }
  if (version === undefined) throw new UsageError('give the new version, e.g. 0.2.0');
  if (version.startsWith('v')) throw new UsageError(`write the version without a leading "v": ${version.slice(1)}`);
  if (!SEMVER.test(version)) throw new UsageError(`"${version}" is not a semantic version (MAJOR.MINOR.PATCH, optional -prerelease and +build)`);
  return { version, root };
}

/** New text of a JSON manifest after `apply`, keeping its indentation and final newline. */
function editJson(path, apply) {
  const text = readFileSync(path, 'utf8');
  const indent = /^[ \t]+(?=")/m.exec(text)?.[0] ?? '  ';
  let data;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`cannot parse ${path} as JSON (${err.message}); fix it and run again`, { cause: err });
  }
  const before = data.version;
  apply(data);
  return { text: JSON.stringify(data, null, indent) + (text.endsWith('\n') ? '\n' : ''), before };
}

/** Serialise `value` in the same quoting style as the scalar it replaces. */
function scalarText(node, value) {
  if (node.type === 'QUOTE_DOUBLE') return JSON.stringify(value);
  if (node.type === 'QUOTE_SINGLE') return `'${value.replaceAll("'", "''")}'`;
  return value;
}

/**
 * Replace scalars in YAML text without re-serialising the document.
 * `edits` is a list of { path: string[], value, required }.
 * Returns the new text and, per edit, the old value (undefined when skipped).
 */
function editYamlScalars(text, origin, edits) {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new Error(`cannot parse ${origin}: ${doc.errors[0].message}; fix the YAML and run again`);
  if (!isMap(doc.contents)) throw new Error(`${origin} must be a YAML mapping`);
  const replacements = [];
  const appended = [];
  const previous = [];
  for (const edit of edits) {
    const node = doc.getIn(edit.path, true);
    if (isScalar(node) && node.range) {
      previous.push(node.value === null ? undefined : String(node.value));
      if (edit.skip?.(node.value)) continue;
      replacements.push({ start: node.range[0], end: node.range[1], text: scalarText(node, edit.value) });
    } else if (node === undefined && edit.path.length === 1 && edit.required) {
      previous.push(undefined);
      appended.push(`${edit.path[0]}: ${JSON.stringify(edit.value)}`);
    } else if (node === undefined && !edit.required) {
      previous.push(undefined);
    } else {
      throw new Error(`${origin}: ${edit.path.join('.')} is not a plain value; set it to a version string by hand once, then run again`);
    }
  }
  let out = text;
  for (const r of replacements.sort((a, b) => b.start - a.start)) out = out.slice(0, r.start) + r.text + out.slice(r.end);
  if (appended.length > 0) out = `${out}${out.endsWith('\n') || out === '' ? '' : '\n'}${appended.join('\n')}\n`;
  return { text: out, previous };
}

/** Work out every file's new text first, so a failure leaves nothing half-written. */
function planVersionChange({ version, root }) {
  const writes = [];
  const changes = [];
  const packageJson = join(root, 'package.json');
  if (!existsSync(packageJson)) throw new Error(`no package.json in ${root}; run from the repository or pass --root`);
  const manifest = editJson(packageJson, (data) => {
    data.version = version;
  });
  writes.push({ path: packageJson, text: manifest.text });
  changes.push(`package.json version ${manifest.before} -> ${version}`);

  const lockPath = join(root, 'package-lock.json');
  if (existsSync(lockPath)) {
    const lock = editJson(lockPath, (data) => {
      data.version = version;
      if (data.packages?.['']) data.packages[''].version = version;
    });
    writes.push({ path: lockPath, text: lock.text });
    changes.push(`package-lock.json version ${lock.before} -> ${version}`);
  }

  const chartPath = join(root, CHART_DIR, 'Chart.yaml');
  if (!existsSync(chartPath)) throw new Error(`no chart at ${chartPath}; the chart's version moves with the package, so add the chart first`);
  const chart = editYamlScalars(readFileSync(chartPath, 'utf8'), chartPath, [
    { path: ['version'], value: version, required: true },
    { path: ['appVersion'], value: version, required: true },
  ]);
  writes.push({ path: chartPath, text: chart.text });
  changes.push(`Chart.yaml version ${chart.previous[0]} -> ${version}, appVersion ${chart.previous[1]} -> ${version}`);

  const valuesPath = join(root, CHART_DIR, 'values.yaml');
  if (existsSync(valuesPath)) {
    const values = editYamlScalars(readFileSync(valuesPath, 'utf8'), valuesPath, [
      { path: ['image', 'tag'], value: version, required: false, skip: (current) => current === null || current === '' },
    ]);
    const pinned = values.previous[0];
    if (pinned !== undefined && pinned !== '') {
      writes.push({ path: valuesPath, text: values.text });
      changes.push(`values.yaml image.tag ${pinned} -> ${version}`);
    } else {
      changes.push('values.yaml image.tag is empty (the chart uses appVersion): left as is');
    }
  }
  return { writes, changes };
}

try {
  const options = parseArgs(process.argv.slice(2));
  const { writes, changes } = planVersionChange(options);
  for (const { path, text } of writes) writeFileSync(path, text);
  for (const line of changes) console.log(line);
  console.log(`Version is now ${options.version}. Add a "## [${options.version}]" section to CHANGELOG.md before tagging.`);
} catch (err) {
  if (err instanceof UsageError) {
    if (err.message) console.error(`set-version: ${err.message}`);
    console.error('usage: node scripts/set-version.mjs <version> [--root DIR]');
  } else {
    console.error(`set-version: ${err.message}`);
  }
  process.exitCode = err instanceof UsageError && err.message === '' ? 0 : 1;
}
