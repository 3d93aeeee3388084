/** Builds TokenConstraints from ConstraintSpecs (where the engine runs: the vocabulary lives there). */
import type { ConstraintFactory, ConstraintSpec } from '../engine/client.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { ANY_OBJECT, compileSchema } from './json-schema-grammar.js';
import { JsonConstraint, Vocabulary } from './token-mask.js';
import { ToolCallConstraint } from './tool-call.js';

export function constraintFactory(tokenizer: Tokenizer): ConstraintFactory {
  let vocab: Vocabulary | null = null; // sorted once, on first use
  return (spec: ConstraintSpec) => {
    vocab ??= Vocabulary.fromTokenizer(tokenizer);
    if (spec.type === 'tool_call') {
      const tools = spec.tools.map((t) => ({ name: t.name, root: t.schema ? compileSchema(t.schema, `tools[${t.name}].parameters`) : ANY_OBJECT }));
      return new ToolCallConstraint(vocab, tools, { head: spec.head, tail: spec.tail, trailer: spec.trailer, gate: spec.gate });
    }
    const root = spec.type === 'json_object' ? ANY_OBJECT : compileSchema(spec.schema, 'response_format.json_schema.schema');
    return new JsonConstraint(vocab, root, spec.gate ?? []);
  };
}
