/**
 * Recurrent (Mamba) states of a hybrid model: one slot per live sequence across every Mamba
 * layer (conv window + SSM state, f32). Slots are handed out like KV blocks; a slot's contents
 * can be copied to another slot (fork) or out to a snapshot and back (prefix cache at block
 * boundaries, speculative rollback).
 */
import type { MambaLayerState } from '../backend/backend.js';
import { TesseraError } from '../util/errors.js';

export class OutOfStateSlotsError extends TesseraError {
  constructor(slots: number) {
    super(`recurrent state cache is full: all ${slots} sequence slots are in use`, 'state_slots_full');
  }
}

/** A copy of one sequence's recurrent state, taken after `length` tokens. */
export interface RecurrentSnapshot {
  readonly length: number;
  /** per Mamba layer: conv window then SSM state */
  readonly conv: Float32Array[];
  readonly ssm: Float32Array[];
}

export class RecurrentStateStore {
  private free: number[] = [];
  /** tokens each slot's state has consumed: a forward must continue exactly there */
  readonly lengths: Int32Array;

  constructor(readonly layers: MambaLayerState[], readonly numSlots: number) {
    for (let s = numSlots - 1; s >= 0; s--) this.free.push(s);
    this.lengths = new Int32Array(numSlots);
  }

  get numFree(): number {
    return this.free.length;
  }

  /** f32 bytes one sequence's state occupies */
  bytesPerSlot(): number {
    return this.layers.reduce((a, l) => a + 4 * (this.convSize(l) + this.ssmSize(l)), 0);
  }

  /** a zeroed slot for a new sequence */
  allocate(): number {
    const s = this.free.pop();
    if (s === undefined) throw new OutOfStateSlotsError(this.numSlots);
    this.zero(s);
    this.lengths[s] = 0;
    return s;
  }

  release(slot: number): void {
    if (slot < 0 || slot >= this.numSlots || this.free.includes(slot)) throw new Error(`state slot ${slot} is not allocated`);
    this.free.push(slot);
  }

  zero(slot: number): void {
    for (const l of this.layers) {
      this.convView(l, slot).fill(0);
      this.ssmView(l, slot).fill(0);
    }
  }

  /** slot → slot (e.g. a forked sequence continues from the same state) */
  copy(src: number, dst: number): void {
    for (const l of this.layers) {
      this.convView(l, dst).set(this.convView(l, src));
      this.ssmView(l, dst).set(this.ssmView(l, src));
    }
    this.lengths[dst] = this.lengths[src];
  }

  snapshot(slot: number, length: number): RecurrentSnapshot {
    return {
      length,
      conv: this.layers.map((l) => this.convView(l, slot).slice()),
      ssm: this.layers.map((l) => this.ssmView(l, slot).slice()),
    };
  }

  restore(snap: RecurrentSnapshot, slot: number): void {
    this.layers.forEach((l, i) => {
      this.convView(l, slot).set(snap.conv[i]);
      this.ssmView(l, slot).set(snap.ssm[i]);
    });
    this.lengths[slot] = snap.length;
  }

  private convSize(l: MambaLayerState): number {
    return (l.convKernel - 1) * l.convDim;
  }

  private ssmSize(l: MambaLayerState): number {
    return l.nHeads * l.headDim * l.stateSize;
  }

  private convView(l: MambaLayerState, slot: number): Float32Array {
    const n = this.convSize(l);
    return l.conv.subarray(slot * n, (slot + 1) * n);
  }

  private ssmView(l: MambaLayerState, slot: number): Float32Array {
    const n = this.ssmSize(l);
    return l.ssm.subarray(slot * n, (slot + 1) * n);
  }
}
