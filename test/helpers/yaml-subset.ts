/**
 * A parser for the small subset of YAML that docs/prometheus/alerts.yml uses
 * (no dependency for one file): block maps and block lists by indentation
 * (spaces only), `key: value`, `- ` list items (a map may start on the dash's
 * line), plain and "double-quoted" / 'single-quoted' scalars, and `#`
 * comments outside quotes. Anything else (flow collections, anchors, block
 * scalars, tabs, a line it cannot place) is an error naming the line, so the
 * file cannot drift into YAML this parser would misread.
 */
export type Yaml = string | Yaml[] | { [k: string]: Yaml };

interface Line {
  no: number;
  indent: number;
  text: string;
}

function stripComment(s: string): string {
  let q: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (q) {
      if (c === '\\' && q === '"') i++;
      else if (c === q) q = null;
    } else if (c === '"' || c === "'") q = c;
    else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]!))) return s.slice(0, i).trimEnd();
  }
  return s.trimEnd();
}

function scalar(raw: string, no: number): string {
  const s = raw.trim();
  if (s.startsWith('"')) {
    if (!/^"(?:[^"\\]|\\.)*"$/.test(s)) throw new Error(`line ${no}: unterminated double-quoted string`);
    return JSON.parse(s) as string;
  }
  if (s.startsWith("'")) {
    if (!/^'(?:[^']|'')*'$/.test(s)) throw new Error(`line ${no}: unterminated single-quoted string`);
    return s.slice(1, -1).replace(/''/g, "'");
  }
  if (/^[[{&*!|>%@`]/.test(s)) throw new Error(`line ${no}: "${s}" is outside the YAML subset this parser reads`);
  return s;
}

const KEY = /^([A-Za-z_][A-Za-z0-9_.-]*):(?:\s+(.*))?$/;

export function parseYamlSubset(text: string): Yaml {
  const lines: Line[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.includes('\t')) throw new Error(`line ${i + 1}: tabs are not allowed`);
    const s = stripComment(raw);
    if (s.trim() === '') return;
    lines.push({ no: i + 1, indent: s.length - s.trimStart().length, text: s.trim() });
  });
  let pos = 0;

  function block(indent: number): Yaml {
    const first = lines[pos];
    if (!first || first.indent !== indent) throw new Error(`line ${first?.no ?? 'end'}: expected a block at indent ${indent}`);
    return first.text.startsWith('- ') || first.text === '-' ? list(indent) : map(indent);
  }

  function list(indent: number): Yaml[] {
    const out: Yaml[] = [];
    while (pos < lines.length && lines[pos]!.indent === indent && lines[pos]!.text.startsWith('-')) {
      const l = lines[pos]!;
      const rest = l.text.slice(1).trimStart();
      if (rest === '') {
        pos++;
        out.push(block(lines[pos]?.indent ?? -1));
      } else if (KEY.test(rest)) {
        // A map that starts on the dash's line: its keys sit at the dash's indent + 2.
        lines[pos] = { no: l.no, indent: indent + 2, text: rest };
        out.push(map(indent + 2));
      } else {
        pos++;
        out.push(scalar(rest, l.no));
      }
    }
    return out;
  }

  function map(indent: number): { [k: string]: Yaml } {
    const out: { [k: string]: Yaml } = {};
    while (pos < lines.length && lines[pos]!.indent === indent && !lines[pos]!.text.startsWith('- ')) {
      const l = lines[pos]!;
      const m = KEY.exec(l.text);
      if (!m) throw new Error(`line ${l.no}: expected "key: value", got "${l.text}"`);
      if (m[1]! in out) throw new Error(`line ${l.no}: duplicate key ${m[1]}`);
      pos++;
      if (m[2] !== undefined && m[2] !== '') out[m[1]!] = scalar(m[2], l.no);
      else {
        const next = lines[pos];
        if (!next || next.indent <= indent) throw new Error(`line ${l.no}: ${m[1]} has no value`);
        out[m[1]!] = block(next.indent);
      }
    }
    if (pos < lines.length && lines[pos]!.indent > indent) throw new Error(`line ${lines[pos]!.no}: unexpected indentation`);
    return out;
  }

  const doc = block(0);
  if (pos !== lines.length) throw new Error(`line ${lines[pos]!.no}: cannot place this line`);
  return doc;
}
