// Kernel table: one implementation per instruction set (generic, AVX2, AVX-512), chosen at
// run time by the CPU's features. All kernels take plain pointers; threading is the caller's.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera {

enum WeightFormat : int { FMT_F32 = 0, FMT_BF16 = 1, FMT_MXFP4 = 2, FMT_INT8 = 3 };

// A weight matrix [rows, cols] as stored (rows = outputs, cols = inputs).
struct Matrix {
  int format;
  int64_t rows, cols;
  const void* data;      // f32 / bf16 / int8 values; MXFP4 blocks (rows · cols/32 · 16 bytes)
  const uint8_t* scales; // MXFP4: E8M0 per 32 inputs; INT8: unused
  const float* row_scale; // INT8: one f32 scale per row
};

// y[t, r] = x[t, :] · W[r, :] (+ bias[r]) for rows [r0, r1) and all T tokens.
// For MXFP4, x must be "deinterleaved": within every 32-block, the 16 even inputs then the 16 odd.
// Each output's sum is computed in an order that depends only on cols (batch invariance).
struct LinearRowsFn {
  void (*fn)(const Matrix& w, const float* x, int64_t T, const float* bias, float* y, int64_t y_stride,
             int64_t r0, int64_t r1);
};

struct KernelTable {
  const char* isa;
  void (*linear_rows)(const Matrix& w, const float* x, int64_t T, const float* bias, float* y,
                      int64_t y_stride, int64_t r0, int64_t r1);
  // attention of one (token, head): scores over `n` cached keys gathered through `slots`
  void (*attend_one)(const float* q, const float* kc, const float* vc, const int32_t* slots, int64_t n,
                     int64_t kv_stride, int64_t d, float scale, float sink, bool has_sink, float* scratch,
                     float* out);
};

const KernelTable& kernels_generic();
const KernelTable& kernels_avx2();
const KernelTable& kernels_avx512();

}  // namespace tessera
