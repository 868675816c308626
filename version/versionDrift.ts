/**
 * Checks that every place a release version is written agrees with package.json.
 * Pure: takes the files' text, returns what disagrees. scripts/set-version.mjs writes them all.
 */
import { parse as parseYaml } from 'yaml';

/** The text of the files that carry the version. */
export interface VersionSources {
  /** package.json "version". */
  packageVersion: string;
  /** charts/mps-injector/Chart.yaml */
  chartYaml: string;
  /** charts/mps-injector/values.yaml */
  valuesYaml: string;
  /** The chart's templates (file name -> text), consulted when values.yaml pins no image tag. */
  templates: ReadonlyMap<string, string>;
  /** CHANGELOG.md */
  changelog: string;
}

/** Semantic Versioning 2.0.0 without a leading "v". */
export const SEMVER_PATTERN =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

const FIX = 'run `node scripts/set-version.mjs <version>` to write one version everywhere';

/** A template line that falls back to the chart's appVersion when image.tag is empty. */
const TAG_DEFAULTS_TO_APP_VERSION = /\.Values\.image\.tag\s*\|\s*default\s+\.Chart\.AppVersion|default\s+\.Chart\.AppVersion\s+\.Values\.image\.tag/;

function yamlMapping(text: string, origin: string, problems: string[]): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    problems.push(`${origin} is not valid YAML (${(err as Error).message}); fix it`);
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    problems.push(`${origin} is not a YAML mapping; fix it`);
    return undefined;
  }
  return parsed as Record<string, unknown>;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Every disagreement between the version sources, as sentences that say what to do; empty when all agree. */
export function findVersionDrift(sources: VersionSources): string[] {
  const problems: string[] = [];
  const version = sources.packageVersion;
  if (!SEMVER_PATTERN.test(version)) problems.push(`package.json version "${version}" is not a semantic version; ${FIX}`);

  const chart = yamlMapping(sources.chartYaml, 'Chart.yaml', problems);
  if (chart) {
    for (const key of ['version', 'appVersion'] as const) {
      const value = chart[key];
      if (typeof value !== 'string') {
        problems.push(`Chart.yaml ${key} is ${value === undefined ? 'missing' : `not a string (${JSON.stringify(value)})`}; ${FIX}`);
      } else if (value !== version) {
        problems.push(`Chart.yaml ${key} is ${value} but package.json says ${version}; ${FIX}`);
      }
    }
  }

  const values = yamlMapping(sources.valuesYaml, 'values.yaml', problems);
  if (values) {
    const image = values['image'];
    const tag = typeof image === 'object' && image !== null ? (image as Record<string, unknown>)['tag'] : undefined;
    if (tag === undefined || tag === null || tag === '') {
      const fallsBack = [...sources.templates.values()].some((text) => TAG_DEFAULTS_TO_APP_VERSION.test(text));
      if (!fallsBack) {
        problems.push(
          'values.yaml pins no image.tag and no chart template defaults it to .Chart.AppVersion; ' +
            'use `.Values.image.tag | default .Chart.AppVersion` in the image reference',
        );
      }
    } else if (String(tag) !== version) {
      problems.push(`values.yaml image.tag is ${String(tag)} but package.json says ${version}; ${FIX}`);
    }
  }

  const heading = new RegExp(`^## \\[${escapeRegExp(version)}\\]`, 'm');
  if (!heading.test(sources.changelog)) {
    problems.push(`CHANGELOG.md has no "## [${version}]" section; move the [Unreleased] notes under it before releasing`);
  }
  return problems;
}
