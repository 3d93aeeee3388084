/**
 * RoPE inverse frequencies, with YaRN scaling (the gpt-oss reference form, no truncation).
 * freq_i = θ^(2i/d); low/high = (d/2)·ln(L0/(β·2π))/ln θ; ramp = clamp((i−low)/(high−low), 0, 1);
 * inv_freq_i = ramp/(f·freq_i) + (1−ramp)/freq_i; concentration C = 0.1·ln f + 1.
 */
import type { RopeSpec } from '../backend/backend.js';

export interface YarnParams {
  factor: number;
  betaFast: number;
  betaSlow: number;
  originalMaxPositions: number;
  /** floor/ceil low and high (transformers' default elsewhere); gpt-oss uses false */
  truncate: boolean;
}

export function plainRope(headDim: number, theta: number, rotaryDim = headDim): RopeSpec {
  const half = rotaryDim >> 1;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.fround(theta ** Math.fround((2 * i) / rotaryDim));
  return { invFreq, concentration: 1, rotaryDim };
}

export function yarnRope(headDim: number, theta: number, y: YarnParams): RopeSpec {
  if (!(y.factor > 1)) return plainRope(headDim, theta);
  const half = headDim >> 1;
  const twoPi = 2 * Math.PI;
  let low = (half * Math.log(y.originalMaxPositions / (y.betaFast * twoPi))) / Math.log(theta);
  let high = (half * Math.log(y.originalMaxPositions / (y.betaSlow * twoPi))) / Math.log(theta);
  if (y.truncate) {
    low = Math.max(Math.floor(low), 0);
    high = Math.min(Math.ceil(high), headDim - 1);
  }
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const freq = Math.fround(theta ** Math.fround((2 * i) / headDim));
    let ramp = high === low ? (i - low) / 0.001 : (i - low) / (high - low);
    ramp = Math.min(1, Math.max(0, ramp));
    const interp = Math.fround(1 / Math.fround(y.factor * freq));
    const extrap = Math.fround(1 / freq);
    invFreq[i] = interp * ramp + extrap * (1 - ramp);
  }
  return { invFreq, concentration: 0.1 * Math.log(y.factor) + 1, rotaryDim: headDim };
}
