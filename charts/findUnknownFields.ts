/**
 * Finds fields the Kubernetes API does not know in rendered objects (a misspelt
 * `readOnlyRootFilesytem` is silently dropped by the API server, and the OpenAPI schema
 * validation in validateRenderedObject.ts lets it through).
 *
 * Each object is written as a typed literal against its kubernetes-models interface and type
 * checked by the TypeScript compiler: excess-property checking reports every unknown field,
 * at any depth, by name.
 */
import path from 'node:path';
import ts from 'typescript';
import type { KubeObject } from './renderChart.js';
import { repoRoot } from './renderChart.js';
import { modelModuleFor } from './validateRenderedObject.js';

export interface UnknownFieldProblem {
  object: string;
  message: string;
}

/** Type-check every object that has a kubernetes-models interface; objects without one are skipped. */
export function findUnknownFields(objects: KubeObject[]): UnknownFieldProblem[] {
  const fileName = path.join(repoRoot, 'charts', '.rendered-objects.check.mts');
  const lines: string[] = [];
  const spans: { object: string; start: number; end: number }[] = [];
  objects.forEach((o, i) => {
    const modulePath = modelModuleFor(o);
    if (!modulePath) return;
    lines.push(`import type { I${o.kind} as T${i} } from '${modulePath}';`);
  });
  objects.forEach((o, i) => {
    if (!modelModuleFor(o)) return;
    const start = lines.length;
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(o, null, 1)};`);
    spans.push({ object: `${o.kind}/${o.metadata.name}`, start, end: lines.join('\n').split('\n').length });
  });
  const text = lines.join('\n');

  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const baseGetSourceFile = host.getSourceFile.bind(host);
  const baseFileExists = host.fileExists.bind(host);
  const baseReadFile = host.readFile.bind(host);
  host.getSourceFile = (name, languageVersion, ...rest) =>
    path.resolve(name) === fileName ? ts.createSourceFile(name, text, languageVersion, true) : baseGetSourceFile(name, languageVersion, ...rest);
  host.fileExists = (name) => path.resolve(name) === fileName || baseFileExists(name);
  host.readFile = (name) => (path.resolve(name) === fileName ? text : baseReadFile(name));

  const program = ts.createProgram([fileName], options, host);
  const source = program.getSourceFile(fileName);
  if (!source) throw new Error('the TypeScript compiler did not load the generated check file');
  const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];

  // Line numbers are 0-based; spans are [start, end) over the generated lines.
  return diagnostics.map((d) => {
    const line = d.start === undefined ? -1 : source.getLineAndCharacterOfPosition(d.start).line;
    const span = spans.find((s) => line >= s.start && line < s.end);
    return { object: span?.object ?? '(imports)', message: ts.flattenDiagnosticMessageText(d.messageText, ' ') };
  });
}
