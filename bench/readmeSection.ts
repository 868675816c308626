/**
 * The README's generated tables: a bench writes its table between two marker lines,
 * `<!-- NAME:begin (written by COMMAND) -->` and `<!-- NAME:end -->`, and leaves the rest alone.
 */
import { readFile, writeFile } from 'node:fs/promises';

export interface ReadmeSection {
  /** Marker name, e.g. `bench:table`. */
  name: string;
  /** The command that writes it, named in the begin marker. */
  writtenBy: string;
}

export function sectionMarkers(section: ReadmeSection): { begin: string; end: string } {
  return { begin: `<!-- ${section.name}:begin (written by ${section.writtenBy}) -->`, end: `<!-- ${section.name}:end -->` };
}

/** The text with the section's content replaced; an error naming both markers when either is missing. */
export function replaceSection(text: string, section: ReadmeSection, content: string): string {
  const { begin, end } = sectionMarkers(section);
  const from = text.indexOf(begin);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`README.md has no section between "${begin}" and "${end}"; add both lines where the table goes`);
  return `${text.slice(0, from + begin.length)}\n${content.endsWith('\n') ? content : `${content}\n`}${text.slice(to)}`;
}

/** Rewrite one section of the README file in place. */
export async function writeReadmeSection(file: string, section: ReadmeSection, content: string): Promise<void> {
  await writeFile(file, replaceSection(await readFile(file, 'utf8'), section, content));
}
