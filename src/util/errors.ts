/**
 * Errors that are part of the API: each names the file, tensor, field or argument at fault.
 * The CLI prints `error.message` as one line and exits non-zero; the server maps them to
 * OpenAI-style error bodies. Anything that is not a TesseraError is a bug.
 */
export class TesseraError extends Error {
  constructor(message: string, readonly code: string = 'invalid_input') {
    super(message);
    this.name = 'TesseraError';
  }
}

/** A checkpoint (config.json or safetensors) that cannot be used as it is. */
export class CheckpointError extends TesseraError {
  constructor(message: string) {
    super(message, 'bad_checkpoint');
    this.name = 'CheckpointError';
  }
}

/** A caller's argument or request field that is out of range or of the wrong form. */
export class InputError extends TesseraError {
  constructor(message: string) {
    super(message, 'invalid_input');
    this.name = 'InputError';
  }
}
