// Kernel table: one implementation per instruction set (generic, AVX2, AVX-512), chosen at
// run time by the CPU's features. All kernels take plain pointers; threading is the caller's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <immintrin.h>

namespace tessera {

// KV cache element types (KvDtype in backend.ts)
enum KvType : int { KV_F32 = 0, KV_F16 = 1, KV_BF16 = 2 };
enum WeightFormat : int { FMT_F32 = 0, FMT_BF16 = 1, FMT_MXFP4 = 2, FMT_INT8 = 3, FMT_FP8 = 4, FMT_NVFP4 = 5 };

// A weight matrix [rows, cols] as stored (rows = outputs, cols = inputs).
struct Matrix {
  int format;
  int64_t rows, cols;
  const void* data;      // f32 / bf16 / int8 / e4m3 values; MXFP4 blocks (rows · cols/32 · 16 bytes);
                         // NVFP4 codes (rows · cols/2 bytes, element 2j in the low nibble)
  const uint8_t* scales; // MXFP4: E8M0 per 32 inputs; NVFP4: e4m3 per 16 inputs
  const float* row_scale; // INT8: one f32 scale per row; NVFP4: the global scale of each row
  // FP8: value = e4m3 · block_scale[⌊r / block_rows⌋ · ⌈cols / block_cols⌉ + ⌊c / block_cols⌋]
  const float* block_scale;
  int64_t block_rows, block_cols;
  // MXFP4, optional: the E8M0 scales again in oct order, made at load (octScales in addon.cpp):
  // for rows in sets of 8 from row 0, block b of the set's 8 rows at scales_oct[(r/8)·8·G + 8b +
  // r%8] (G = cols/32; a last set short of 8 rows is padded). One 8-byte load gives the scales of
  // one block for 8 rows, which the rows-in-lanes kernels (1-4 tokens) otherwise transpose from
  // `scales`; the token-lane kernels keep reading `scales`.
  const uint8_t* scales_oct = nullptr;
  // MXFP4, optional: the blocks and scales again with 16 rows in lanes, made at load
  // (packRows16 in addon.cpp, mxfp4_rows16_pack below), for the AVX-512 VNNI q8 kernel. Rows in
  // sets of 16 from row 0 (rows a multiple of 16); set s, block b:
  //   rows16[(s·G + b)·256 + 64c + 4i ..+3] = stored bytes 4c..4c+3 of row 16s+i's block b
  //   scales16[(s·G + b)·16 + i] = row 16s+i's scale of block b
  // so one 64-byte load holds 4 bytes (8 inputs) of each of 16 rows, one 32-bit lane per row,
  // and a 16-byte load the 16 rows' scales of a block. The same bytes as `data`, rearranged: a
  // row slice at a multiple of 16 starts at the same offset.
  const uint8_t* rows16 = nullptr;
  const uint8_t* scales16 = nullptr;
  // INT8, optional: `data` itself holds the rows with 16 in lanes (re-quantised weights are this
  // process's own memory, rearranged in place at load: packInt8Rows16 in addon.cpp); rows and
  // cols multiples of 16 and 32; set s, 32-input block b:
  //   data[(s·G + b)·512 + 64c + 4i ..+3] = inputs 32b + 4c .. +3 of row 16s+i   (c = 0..7)
  // Only the AVX-512 VNNI q8 kernel reads it (addon.cpp refuses the others).
  bool int8_rows16 = false;
};

// One set of 16 int8 rows of C inputs (C a multiple of 32) into that order, from src to dst
// (16 · C bytes each, not overlapping).
inline void int8_rows16_pack(const int8_t* src, int64_t C, int8_t* dst) {
  const int64_t G = C / 32;
  for (int64_t i = 0; i < 16; i++)
    for (int64_t b = 0; b < G; b++)
      for (int c = 0; c < 8; c++) __builtin_memcpy(dst + (b * 512 + 64 * c + 4 * i), src + i * C + b * 32 + 4 * c, 4);
}

// One set of 16 MXFP4 rows (16 · G blocks at `blocks`, their scales at `scales`, row stride G)
// into Matrix::rows16's order at ob (G · 256 bytes) and os (G · 16 bytes).
// Per block, 4 rows at a time: their 16 bytes in 4 registers, a 4 × 4 transpose of 32-bit words,
// and 4 stores that fill 16 bytes of each chunk; a block's 4 chunks (4 whole cache lines) are
// written by its 16 stores in a row. `stream`: non-temporal stores (a load-time copy of the
// whole checkpoint's experts, which should not evict the page cache's lines through the caches
// or read each destination line before writing it; only where ob is 16-byte aligned).
inline void mxfp4_rows16_pack(const uint8_t* blocks, const uint8_t* scales, int64_t G, uint8_t* ob, uint8_t* os, bool stream = false) {
  const int64_t rs = G * 16;
  stream = stream && (reinterpret_cast<uintptr_t>(ob) & 15) == 0;
  for (int64_t b = 0; b < G; b++) {
    for (int64_t q = 0; q < 4; q++) {
      const uint8_t* p = blocks + 4 * q * rs + b * 16;
      const __m128i r0 = _mm_loadu_si128((const __m128i*)p), r1 = _mm_loadu_si128((const __m128i*)(p + rs));
      const __m128i r2 = _mm_loadu_si128((const __m128i*)(p + 2 * rs)), r3 = _mm_loadu_si128((const __m128i*)(p + 3 * rs));
      const __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpackhi_epi32(r0, r1);
      const __m128i t2 = _mm_unpacklo_epi32(r2, r3), t3 = _mm_unpackhi_epi32(r2, r3);
      const __m128i c[4] = {_mm_unpacklo_epi64(t0, t2), _mm_unpackhi_epi64(t0, t2), _mm_unpacklo_epi64(t1, t3), _mm_unpackhi_epi64(t1, t3)};
      for (int k = 0; k < 4; k++) {
        __m128i* d = (__m128i*)(ob + b * 256 + 64 * k + 16 * q);
        if (stream) _mm_stream_si128(d, c[k]);
        else _mm_storeu_si128(d, c[k]);
      }
    }
    for (int64_t i = 0; i < 16; i++) os[b * 16 + i] = scales[i * G + b];
  }
  if (stream) _mm_sfence();
}

// e4m3 (OCP e4m3fn: bias 7, no infinities, S.1111.111 = NaN) byte → f32, exact
inline float e4m3_to_f32(uint8_t b) {
  const int e = (b >> 3) & 15, m = b & 7;
  float v;
  if (e == 15 && m == 7) v = __builtin_nanf("");
  else if (e == 0) v = float(m) * (1.f / 512.f);
  else v = (1.f + float(m) / 8.f) * __builtin_ldexpf(1.f, e - 7);
  return (b & 0x80) ? -v : v;
}

// y[t, r] = x[t, :] · W[r, :] (+ bias[r]) for rows [r0, r1) and all T tokens.
// For MXFP4, x must be "deinterleaved": within every 32-block, the 16 even inputs then the 16 odd.
// Each output's sum is computed in an order that depends only on cols (batch invariance).
struct LinearRowsFn {
  void (*fn)(const Matrix& w, const float* x, int64_t T, const float* bias, float* y, int64_t y_stride,
             int64_t r0, int64_t r1);
};

// Activations quantised to int8 (q8: one f32 scale per 32 inputs, as llama.cpp's q8_0), laid out
// for the integer kernels. Per token, groups of Q8_GROUP_COLS(format) inputs, each group one
// record of Q8_GROUP_BYTES(format) bytes:
//   q    int8 values: MXFP4 and NVFP4 (4 blocks of 32): the 4×16 even inputs, then the 4×16 odd
//        ones (so the low / high nibbles of 64 stored bytes meet their inputs); INT8 (2 blocks): in order
//   corr 16 × int32, added to the integer sums before scaling: the offset that makes the weights
//        unsigned (MXFP4, NVFP4: 2·e2m1 + 12; INT8: w + 128) times −Σq of the block, in the block's
//        first lane (NVFP4: of its inputs 0–15 in the first lane, 16–31 in the second)
//   dxl  16 × f32, the block scale of each lane's inputs (MXFP4: halved, for the 2·e2m1 codes)
// Padding blocks past `cols` are zero. Built by prepare_q8 (addon.cpp), the same on every ISA.
// A token's stride (q8_token_bytes) is its groups, and one group more where they come to a
// multiple of 2 KB: the kernels read a block of several tokens at once, and records 4 KB apart
// share their L1 sets (Zen 5: 48 KB, 12 ways, 64 sets), so 16 tokens of gpt-oss's o projection
// (4096 inputs: 12288 bytes a token) fought over 12 ways: with the group, 340 → 290 µs a call at
// 16 sequences (interleaved decode steps of gpt-oss-20b: medians 149.5 → 147.2 ms; 8 sequences
// 100.8 → 100.5, 1 no change). The extra group is never read.
inline int64_t q8_group_cols(int format) { return format == FMT_MXFP4 || format == FMT_NVFP4 ? 128 : 64; }
inline int64_t q8_group_bytes(int format) { return q8_group_cols(format) + 128; }
inline int64_t q8_token_bytes(int format, int64_t cols) {
  const int64_t n = (cols + q8_group_cols(format) - 1) / q8_group_cols(format) * q8_group_bytes(format);
  return n % 2048 == 0 ? n + q8_group_bytes(format) : n;
}

// q8 activations of MXFP4 inputs with tokens in lanes, for kernels that broadcast each weight to
// 8 tokens (KernelTable::linear_rows_q8_t8). Per 8 tokens ("token oct" o), per 32-input block b,
// one record of Q8_T8_BLOCK_BYTES at ((o · blocks) + b) · Q8_T8_BLOCK_BYTES:
//   8 chunks × 32 bytes: chunk c < 4 holds, for token j of the oct at bytes 4j..4j+3, the q of
//        the block's stored bytes 4c..4c+3 low nibbles (its even inputs 8c, 8c+2, 8c+4, 8c+6);
//        chunk 4 + c the same bytes' high nibbles (the odd inputs 8c+1, …, 8c+7)
//   corr 8 × int32, dx 8 × f32: the block's corr and lane scale of each token (as in q8 records)
//   NVFP4 only: corr of the block's inputs 16–31, 8 × int32 (the corr above is of inputs 0–15)
// Tokens past T in the last oct are zero. Built from q8 records by q8_token_lanes (addon.cpp).
constexpr int64_t Q8_T8_BLOCK_BYTES = 320;
inline int64_t q8_t8_block_bytes(int format) { return format == FMT_NVFP4 ? Q8_T8_BLOCK_BYTES + 32 : Q8_T8_BLOCK_BYTES; }
inline int64_t q8_t8_bytes(int format, int64_t T, int64_t cols) { return (T + 7) / 8 * (cols / 32) * q8_t8_block_bytes(format); }

struct KernelTable {
  const char* isa;
  void (*linear_rows)(const Matrix& w, const float* x, int64_t T, const float* bias, float* y,
                      int64_t y_stride, int64_t r0, int64_t r1);
  // attention of one token for the G query heads of one KV head: scores over `n` cached keys
  // gathered through `slots`; q/out are [G, d], sinks G values or null, scratch G·n floats
  // (kc / vc: the layer's cache at the KV head's first value, elements of kv_type)
  void (*attend_group)(const float* q, const void* kc, const void* vc, int kv_type, const int32_t* slots, int64_t n,
                       int64_t kv_stride, int64_t d, float scale, const float* sinks, int64_t G, float* scratch,
                       float* out);
  // y[t, r] for rows [r0, r1) from q8 activations `xq` (token stride q8_token_bytes); MXFP4 / INT8 /
  // NVFP4 (cols a multiple of 32) only
  void (*linear_rows_q8)(const Matrix& w, const uint8_t* xq, int64_t T, const float* bias, float* y,
                         int64_t y_stride, int64_t r0, int64_t r1);
  // MXFP4 / NVFP4 only, from token-lane activations `xt` (q8_t8_bytes): null where the ISA has no such
  // kernel. Bit-identical to linear_rows_q8 on the same tokens, so the caller may pick either.
  void (*linear_rows_q8_t8)(const Matrix& w, const uint8_t* xt, int64_t T, const float* bias, float* y,
                            int64_t y_stride, int64_t r0, int64_t r1);
  // whether linear_rows_q8 reads Matrix::scales_oct where it is set (the AVX2 q8 kernels); the
  // others ignore it, and the copy is then not worth its memory
  bool q8_reads_scales_oct;
  // whether linear_rows_q8 reads Matrix::rows16 where it is set (the AVX-512 VNNI kernel)
  bool q8_reads_rows16;
  // zeroes the vector state these kernels leave dirty, or null where there is none: AVX-512 code
  // uses zmm16-31, which the compiler's vzeroupper leaves as they are, and while their upper
  // bits are set every legacy-SSE instruction after them on that thread (addon.cpp and
  // mamba.cpp are built for any x86-64) pays a merge: gpt-oss's SwiGLU over 4 experts at 1 token
  // took 487 µs a call after the VNNI kernels against 59 µs with the state cleared (Xeon guest).
  // The pool runs it after each thread's share of a job (ThreadPool::set_epilogue).
  void (*clear_upper)();
  // gpt-oss's clamped SwiGLU over the interleaved gate/linear pairs of one token's w1 output h:
  // out[c] = (g·σ(α·g))·(l + 1) for c in [c0, c1), g = min(h[2c], limit), l = h[2c+1] clamped
  // to ±limit (AVX-512: 16 at a time with a polynomial exp, results within 5 ulp of the scalar
  // expf path the other builds take)
  void (*swiglu)(const float* h, int64_t c0, int64_t c1, float alpha, float limit, float* out);
};

const KernelTable& kernels_generic();
const KernelTable& kernels_avx2();
const KernelTable& kernels_avx512();
const KernelTable& kernels_avx512vnni();
const KernelTable& kernels_amx();  // AVX-512 VNNI's, with AMX tiles from 16 tokens

}  // namespace tessera
