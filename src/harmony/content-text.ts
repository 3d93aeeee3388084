/**
 * The text of system and developer content parts and of the shared `# Tools` section
 * (FORMAT.md §5.1–5.3; openai/harmony encoding.rs). Each whole text is later encoded as one piece.
 */
import { schemaToTypeScript } from './schema-ts.js';
import type { DeveloperContent, SystemContent, ToolNamespace } from './types.js';

/** Rust's str::lines(): split on \n, drop one trailing \r per line, no final empty line */
export function rustLines(s: string): string[] {
  if (s === '') return [];
  const parts = s.split('\n');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * The reference keeps namespaces in a BTreeMap keyed by name: a later namespace with the same
 * name replaces an earlier one, and they come out sorted by name (byte order).
 */
export function namespaceMap(tools: readonly ToolNamespace[]): ToolNamespace[] {
  const byName = new Map<string, ToolNamespace>();
  for (const ns of tools) byName.set(ns.name, ns);
  return [...byName.values()].sort((a, b) => byteCompare(a.name, b.name));
}

export function toolsSection(tools: readonly ToolNamespace[]): string {
  const sections = ['# Tools'];
  for (const ns of namespaceMap(tools)) {
    const lines = [`## ${ns.name}\n`];
    if (ns.description !== null) {
      for (const line of rustLines(ns.description)) lines.push(ns.tools.length > 0 ? `// ${line}` : line);
    }
    if (ns.tools.length > 0) {
      lines.push(`namespace ${ns.name} {\n`);
      for (const tool of ns.tools) {
        for (const line of rustLines(tool.description)) lines.push(`// ${line}`);
        if (tool.parameters !== null && tool.parameters !== undefined) {
          lines.push(`type ${tool.name} = (_: ${schemaToTypeScript(tool.parameters, '')}) => any;\n`);
        } else {
          lines.push(`type ${tool.name} = () => any;\n`);
        }
      }
      lines.push(`} // namespace ${ns.name}`);
    }
    sections.push(lines.join('\n'));
  }
  return sections.join('\n\n');
}

export function systemContentText(sys: SystemContent, conversationHasFunctionTools: boolean): string {
  const sections: string[] = [];
  const top: string[] = [];
  if (sys.modelIdentity !== null) top.push(sys.modelIdentity);
  if (sys.knowledgeCutoff !== null) top.push(`Knowledge cutoff: ${sys.knowledgeCutoff}`);
  if (sys.conversationStartDate !== null) top.push(`Current date: ${sys.conversationStartDate}`);
  if (top.length > 0) sections.push(top.join('\n'));
  if (sys.reasoningEffort !== null) sections.push(`Reasoning: ${sys.reasoningEffort}`);
  if (sys.tools !== null && sys.tools.length > 0) sections.push(toolsSection(sys.tools));
  const cc = sys.channelConfig;
  if (cc !== null && cc.validChannels.length > 0) {
    let header = `# Valid channels: ${cc.validChannels.join(', ')}.`;
    if (cc.channelRequired) header += ' Channel must be included for every message.';
    if (conversationHasFunctionTools) header += "\nCalls to these tools must go to the commentary channel: 'functions'.";
    sections.push(header);
  }
  return sections.join('\n\n');
}

export function developerContentText(dev: DeveloperContent): string {
  const sections: string[] = [];
  if (dev.instructions !== null) sections.push('# Instructions', dev.instructions);
  if (dev.tools !== null && dev.tools.length > 0) sections.push(toolsSection(dev.tools));
  return sections.join('\n\n');
}

/** FORMAT.md §4.4: some developer part offers a non-empty `functions` namespace */
export function hasFunctionTools(parts: Iterable<{ type: string; tools?: ToolNamespace[] | null }>): boolean {
  for (const p of parts) {
    if (p.type !== 'developer_content' || !p.tools) continue;
    const fns = namespaceMap(p.tools).find((ns) => ns.name === 'functions');
    if (fns && fns.tools.length > 0) return true;
  }
  return false;
}
