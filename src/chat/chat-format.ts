/**
 * The seam between the OpenAI APIs and a model family's prompt format. The server, the CLI chat
 * and the library API only talk to this interface; harmony (gpt-oss) and jinja chat templates
 * (Nemotron) implement it.
 */
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { ConstraintSpec } from '../engine/client.js';

/** A prompt ready to run. */
export interface RenderedPrompt {
  ids: number[];
  /** the same prompt as text (special tokens written as their names), for `tessera render` */
  text: string;
  /**
   * A constraint the completion needs from its first token, whatever response_format says: a
   * tool call that tool_choice forces (the prompt already opened the call; the model fills in
   * the arguments, or also picks the tool).
   */
  constraint?: ConstraintSpec;
}

/** What the model produced, as it streams (one token can produce several events). */
export type OutputEvent =
  | { type: 'reasoning'; delta: string }
  | { type: 'content'; delta: string }
  /** a tool call begins; `index` counts the calls of this completion from 0 */
  | { type: 'tool_call_start'; index: number; id: string; name: string }
  | { type: 'tool_call_arguments'; index: number; delta: string }
  | { type: 'tool_call_end'; index: number };

export interface ToolCall {
  id: string;
  name: string;
  /** the arguments exactly as generated (JSON text when the model obeyed the schema) */
  arguments: string;
}

/** The whole completion, parsed. */
export interface ParsedOutput {
  reasoning: string;
  content: string;
  toolCalls: ToolCall[];
  /** the model's output did not follow the format somewhere (it was still kept, as content) */
  malformed: boolean;
}

/** Turns completion tokens into events; never throws on model output. */
export interface OutputParser {
  push(id: number): OutputEvent[];
  /** end of generation (stop token, length limit or cancellation): flush what is pending */
  finish(): OutputEvent[];
  result(): ParsedOutput;
}

export type ReasoningEffort = 'low' | 'medium' | 'high';

export interface ChatFormat {
  readonly name: string;
  readonly tokenizer: Tokenizer;
  /** ids that end a completion (e.g. harmony's <|return|> and <|call|>) */
  readonly stopTokenIds: readonly number[];
  /**
   * A Chat Completions request body (already JSON-parsed, not yet validated) → the prompt.
   * Throws InputError naming the field (e.g. `messages[2].role`) on an invalid shape.
   */
  renderChatCompletion(body: Record<string, unknown>): RenderedPrompt;
  /** A Responses API request body → the prompt; InputError on an invalid shape. */
  renderResponses(body: Record<string, unknown>): RenderedPrompt;
  /** a parser for the tokens generated after `prompt` (some formats depend on how it ended) */
  createParser(prompt?: RenderedPrompt): OutputParser;
  /**
   * The token sequence after which the answer proper begins (e.g. harmony's
   * `<|channel|>final<|message|>`): response-format constraints start there, so reasoning runs
   * free. Absent or empty: constraints apply from the first token.
   */
  constrainedContentGate?(prompt?: RenderedPrompt): number[];
}
