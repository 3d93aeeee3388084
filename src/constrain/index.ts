/** Builds TokenConstraints from ConstraintSpecs (where the engine runs: the vocabulary lives there). */
import type { ConstraintFactory, ConstraintSpec } from '../engine/client.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { ANY_OBJECT, compileSchema } from './json-schema-grammar.js';
import { JsonConstraint, Vocabulary } from './token-mask.js';

export function constraintFactory(tokenizer: Tokenizer): ConstraintFactory {
  let vocab: Vocabulary | null = null; // sorted once, on first use
  return (spec: ConstraintSpec) => {
    vocab ??= Vocabulary.fromTokenizer(tokenizer);
    const root = spec.type === 'json_object' ? ANY_OBJECT : compileSchema(spec.schema, 'response_format.json_schema.schema');
    return new JsonConstraint(vocab, root, spec.gate ?? []);
  };
}
