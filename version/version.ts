/**
 * The running program's version, read from the package manifest that ships with it.
 *
 * package.json is the single version source (scripts/set-version.mjs writes it and the chart
 * together). The manifest is found by walking up from this module's own file, so the same code
 * works from source under Jest (version/version.ts -> ../package.json), from a build
 * (dist/version/version.js -> ../../package.json), from an npm install
 * (node_modules/mps-injector/dist/...) and inside the container image (/app/dist/...).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The `name` of this project's package.json; a manifest with another name is skipped. */
export const PACKAGE_NAME = 'mps-injector';

/** Thrown when the version cannot be determined; the message says where it looked and what to do. */
export class VersionError extends Error {
  override readonly name = 'VersionError';
}

/** Parse manifest text and return its version, or throw a VersionError naming `origin`. */
export function versionFromManifestText(text: string, origin: string): string {
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch (err) {
    throw new VersionError(`cannot parse ${origin} as JSON (${(err as Error).message}); restore a valid package.json`);
  }
  const version = typeof manifest === 'object' && manifest !== null ? (manifest as { version?: unknown }).version : undefined;
  if (typeof version !== 'string' || version.trim() === '') {
    throw new VersionError(`${origin} has no "version" string; set one with scripts/set-version.mjs`);
  }
  return version;
}

/**
 * Find the path of the package.json named PACKAGE_NAME in `startDir` or one of its parents.
 * `readText` returns the file's text, or undefined when there is no such file.
 */
export function findPackageManifest(startDir: string, readText: (path: string) => string | undefined = readTextIfPresent): { path: string; text: string } {
  let dir = startDir;
  for (;;) {
    const path = join(dir, 'package.json');
    const text = readText(path);
    if (text !== undefined && manifestName(text) === PACKAGE_NAME) return { path, text };
    const parent = dirname(dir);
    if (parent === dir) {
      throw new VersionError(
        `no package.json named "${PACKAGE_NAME}" in ${startDir} or any parent folder; ` +
          'package.json must ship beside dist/ (check the package "files" list and the image COPY lines)',
      );
    }
    dir = parent;
  }
}

let cached: string | undefined;

/** The version in this package's package.json (read once, then cached). */
export function packageVersion(): string {
  if (cached === undefined) {
    const moduleDir = dirname(fileURLToPath(import.meta.url));
    const { path, text } = findPackageManifest(moduleDir);
    cached = versionFromManifestText(text, path);
  }
  return cached;
}

function manifestName(text: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    const name = typeof parsed === 'object' && parsed !== null ? (parsed as { name?: unknown }).name : undefined;
    return typeof name === 'string' ? name : undefined;
  } catch {
    return undefined;
  }
}

function readTextIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
    throw err;
  }
}
