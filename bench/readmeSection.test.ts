import { replaceSection, sectionMarkers } from './readmeSection.js';

const section = { name: 'bench:replicas', writtenBy: 'npm run bench:replicas -- --write-readme' };
const { begin, end } = sectionMarkers(section);

describe('replaceSection', () => {
  test('replaces only what lies between the markers', () => {
    const text = `intro\n${begin}\n| old |\n${end}\noutro\n`;
    expect(replaceSection(text, section, '| new |')).toBe(`intro\n${begin}\n| new |\n${end}\noutro\n`);
  });

  test('a README without the markers is an error that names them', () => {
    expect(() => replaceSection('no markers here', section, '| new |')).toThrow(begin);
    expect(() => replaceSection(`${end}\n${begin}\n`, section, '| new |')).toThrow(end);
  });
});
