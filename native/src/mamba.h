// Mamba-2 kernels (Nemotron-H): causal depthwise conv with rolling state, the selective scan
// (chunked SSD for multi-token segments, recurrent step for single tokens), gated group RMSNorm.
// Same math as src/backend/reference-mamba.ts; f32 storage, f64 accumulation in reductions.
#pragma once
#include <cstdint>
#include "pool.h"

namespace tessera {

// one sequence's tokens [start, start+len) of the packed batch and its state slot
struct MambaSeg {
  int64_t start, len, slot;
  bool fresh;  // start from zero state
};

void mamba_conv1d(ThreadPool& pool, const float* x, int64_t Cd, int64_t K, const float* w, const float* bias,
                  float* conv_state, const MambaSeg* segs, int64_t nseg, float* out);

void mamba_ssm_scan(ThreadPool& pool, const float* x, const float* dt, const float* B, const float* C, const float* A,
                    const float* D, const float* dt_bias, float* ssm_state, const MambaSeg* segs, int64_t nseg,
                    int64_t T, int64_t nh, int64_t P, int64_t G, int64_t N, int64_t chunk, float dt_min, float dt_max,
                    float* y);

// out = RMSNorm per group of `gs` channels of y · silu(z), times weight (W channels per token);
// the reference's f64 arithmetic with its f32 roundings (reference-mamba.ts gatedRmsNorm)
void mamba_gated_rmsnorm(ThreadPool& pool, const float* y, const float* z, int64_t T, int64_t W, const float* weight,
                         int64_t gs, double eps, float* out);

}  // namespace tessera
