/**
 * JSON schema → the TypeScript-like type text harmony puts in tool definitions
 * (FORMAT.md §5.4; openai/harmony encoding.rs json_schema_to_typescript). Every quirk of the
 * reference is kept on purpose: the model was trained on exactly this text.
 */

type Json = unknown;

function isObj(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** serde_json's Value::get(&str): undefined unless `v` is an object holding `key` */
function get(v: Json, key: string): Json | undefined {
  return isObj(v) && Object.prototype.hasOwnProperty.call(v, key) ? v[key] : undefined;
}

function str(v: Json | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function isEnum(schema: Json): boolean {
  const e = get(schema, 'enum');
  return Array.isArray(e) && e.length > 0;
}

function nullableTrue(schema: Json): boolean {
  return get(schema, 'nullable') === true;
}

/** serde_json's compact Display of a value (`default: 10`, `default: ["popup"]`) */
function jsonText(v: Json): string {
  return JSON.stringify(v);
}

/** the `default: …` comment of the property paths: strings bare when the schema is an enum */
function defaultComment(schema: Json, def: Json): string {
  if (typeof def === 'string') return isEnum(schema) ? `default: ${def}` : `default: "${def}"`;
  return `default: ${jsonText(def)}`;
}

function withNullable(variant: Json, typeStr: string): string {
  return nullableTrue(variant) && !typeStr.includes('null') ? `${typeStr} | null` : typeStr;
}

export function schemaToTypeScript(schema: Json, indent = ''): string {
  const oneOf = get(schema, 'oneOf');
  if (Array.isArray(oneOf)) {
    let out = '';
    for (const variant of oneOf) {
      out += `\n${indent} | `;
      out += withNullable(variant, schemaToTypeScript(variant, `${indent}   `));
      const comments: string[] = [];
      const desc = str(get(variant, 'description'));
      if (desc !== undefined) comments.push(desc);
      const def = get(variant, 'default');
      if (def !== undefined) {
        // on this path a string default is always quoted (serde prints a JSON string)
        comments.push(typeof def === 'string' && !isEnum(variant) ? `default: "${def}"` : `default: ${jsonText(def)}`);
      }
      if (comments.length > 0) out += ` // ${comments.join(' ')}`;
    }
    return out;
  }
  const type = get(schema, 'type');
  if (Array.isArray(type)) {
    const names = type.filter((t): t is string => typeof t === 'string').map((t) => (t === 'integer' ? 'number' : t));
    if (names.length > 0) return names.join(' | ');
  }
  if (typeof type === 'string') {
    switch (type) {
      case 'object':
        return objectType(schema, indent);
      case 'string': {
        const e = get(schema, 'enum');
        if (Array.isArray(e)) {
          const members = e.filter((v): v is string => typeof v === 'string').map((v) => `"${v}"`);
          if (members.length > 0) return members.join(' | ');
        }
        return 'string';
      }
      case 'number':
      case 'integer':
        return 'number';
      case 'boolean':
        return 'boolean';
      case 'array': {
        const items = get(schema, 'items');
        return items !== undefined ? `${schemaToTypeScript(items, indent)}[]` : 'Array<any>';
      }
      default:
        return 'any';
    }
  }
  if (oneOf !== undefined) {
    // the reference's defensive branch: a non-array oneOf renders as `any`
    return 'any';
  }
  return 'any';
}

function objectType(schema: Json, indent: string): string {
  let out = '';
  const desc = str(get(schema, 'description'));
  if (desc !== undefined) out += `${indent}// ${desc}\n`;
  out += '{\n';
  const props = get(schema, 'properties');
  if (isObj(props)) {
    const required = new Set<string>();
    const req = get(schema, 'required');
    if (Array.isArray(req)) for (const r of req) if (typeof r === 'string') required.add(r);
    for (const [key, val] of Object.entries(props)) {
      const opt = required.has(key) ? '' : '?';
      const title = str(get(val, 'title'));
      if (title !== undefined) out += `${indent}// ${title}\n${indent}//\n`;
      const valOneOf = get(val, 'oneOf');
      const propDesc = str(get(val, 'description'));
      if (valOneOf === undefined && propDesc !== undefined) out += `${indent}// ${propDesc}\n`;
      const examples = get(val, 'examples');
      if (Array.isArray(examples) && examples.length > 0) {
        out += `${indent}// Examples:\n`;
        for (const ex of examples) if (typeof ex === 'string') out += `${indent}// - "${ex}"\n`;
      }
      if (Array.isArray(valOneOf)) {
        const firstDesc = str(get(valOneOf[0], 'description'));
        const skipPropDesc = propDesc !== undefined && firstDesc !== undefined && propDesc === firstDesc;
        let descAbove = false;
        if (!skipPropDesc && propDesc !== undefined) {
          out += `${indent}// ${propDesc}\n`;
          descAbove = true;
        }
        const def = get(val, 'default');
        if (def !== undefined) out += `${indent}// ${defaultComment(val, def)}\n`;
        out += `${indent}${key}${opt}:\n`;
        valOneOf.forEach((variant, i) => {
          out += `${indent} | `;
          out += withNullable(variant, schemaToTypeScript(variant, `${indent}   `));
          const comments: string[] = [];
          if (!(i === 0 && descAbove)) {
            const vd = str(get(variant, 'description'));
            if (vd !== undefined && vd !== propDesc) comments.push(vd);
          }
          const vdef = get(variant, 'default');
          if (vdef !== undefined) comments.push(defaultComment(variant, vdef));
          if (comments.length > 0) out += ` // ${comments.join(' ')}`;
          out += '\n';
        });
        out += `${indent},\n`;
        continue;
      }
      out += `${indent}${key}${opt}: `;
      out += withNullable(val, schemaToTypeScript(val, `${indent}    `));
      out += ',';
      if (valOneOf === undefined) {
        const def = get(val, 'default');
        if (def !== undefined) out += ` // ${defaultComment(val, def)}`;
      }
      out += '\n';
    }
  }
  out += `${indent}}`;
  return out;
}
