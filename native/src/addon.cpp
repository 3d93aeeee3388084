// Node-API bindings: the coarse ops of the Backend interface over typed arrays owned by JS.
// Each op validates its arguments (a wrong call throws a JS TypeError, never crashes) and
// runs on the persistent thread pool.
#include <node_api.h>
#include <immintrin.h>
#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>
#include "kernels.h"
#include "pool.h"
#include "mamba.h"

using namespace tessera;

namespace {

const KernelTable* K = nullptr;
std::unique_ptr<ThreadPool> pool;

struct Err {
  std::string msg;
};

#define NAPI(call)                                    \
  do {                                                \
    if ((call) != napi_ok) throw Err{"napi: " #call}; \
  } while (0)

struct Args {
  napi_env env;
  std::vector<napi_value> v;
  // n slots; the first `required` (default all) must be given, the rest read as undefined
  Args(napi_env e, napi_callback_info info, size_t n, size_t required = SIZE_MAX) : env(e), v(n) {
    size_t argc = n;
    NAPI(napi_get_cb_info(e, info, &argc, v.data(), nullptr, nullptr));
    if (required > n) required = n;
    if (argc < required) throw Err{"expected " + std::to_string(required) + " arguments"};
    for (size_t i = argc; i < n; i++) NAPI(napi_get_undefined(e, &v[i]));
  }
};

bool is_null(napi_env env, napi_value v) {
  napi_valuetype t;
  NAPI(napi_typeof(env, v, &t));
  return t == napi_null || t == napi_undefined;
}

template <typename T>
T* typed(napi_env env, napi_value v, napi_typedarray_type want, size_t* len, const char* what) {
  bool ok = false;
  NAPI(napi_is_typedarray(env, v, &ok));
  if (!ok) throw Err{std::string(what) + ": expected a typed array"};
  napi_typedarray_type type;
  void* data;
  size_t n;
  NAPI(napi_get_typedarray_info(env, v, &type, &n, &data, nullptr, nullptr));
  if (type != want) throw Err{std::string(what) + ": wrong typed array type"};
  if (len) *len = n;
  return static_cast<T*>(data);
}

// an optional boolean argument (undefined / null → false)
bool flag(napi_env env, napi_value v) {
  if (is_null(env, v)) return false;
  bool b = false;
  if (napi_get_value_bool(env, v, &b) != napi_ok) throw Err{"expected a boolean"};
  return b;
}

double num(napi_env env, napi_value v) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) throw Err{"expected a number"};
  return d;
}

napi_value prop(napi_env env, napi_value o, const char* name) {
  napi_value r;
  NAPI(napi_get_named_property(env, o, name, &r));
  return r;
}

std::string str(napi_env env, napi_value v) {
  char buf[64];
  size_t n;
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &n) != napi_ok) throw Err{"expected a string"};
  return std::string(buf, n);
}

// A JS QMatrix → Matrix (views into JS memory; valid for the duration of the call).
Matrix matrix(napi_env env, napi_value o) {
  Matrix m{};
  std::string f = str(env, prop(env, o, "format"));
  m.rows = int64_t(num(env, prop(env, o, "rows")));
  m.cols = int64_t(num(env, prop(env, o, "cols")));
  size_t n;
  if (f == "f32") {
    m.format = FMT_F32;
    m.data = typed<float>(env, prop(env, o, "data"), napi_float32_array, &n, "matrix.data");
    if (int64_t(n) < m.rows * m.cols) throw Err{"matrix.data too short"};
  } else if (f == "bf16") {
    m.format = FMT_BF16;
    m.data = typed<uint16_t>(env, prop(env, o, "data"), napi_uint16_array, &n, "matrix.data");
    if (int64_t(n) < m.rows * m.cols) throw Err{"matrix.data too short"};
  } else if (f == "int8") {
    m.format = FMT_INT8;
    m.data = typed<int8_t>(env, prop(env, o, "data"), napi_int8_array, &n, "matrix.data");
    if (int64_t(n) < m.rows * m.cols) throw Err{"matrix.data too short"};
    m.row_scale = typed<float>(env, prop(env, o, "rowScale"), napi_float32_array, &n, "matrix.rowScale");
    if (int64_t(n) < m.rows) throw Err{"matrix.rowScale too short"};
    napi_value lay = prop(env, o, "layout");
    if (!is_null(env, lay)) {
      if (str(env, lay) != "rows16") throw Err{"matrix.layout: expected \"rows16\""};
      if (m.rows % 16 || m.cols % 32) throw Err{"matrix.layout rows16: rows must be a multiple of 16 and cols of 32"};
      m.int8_rows16 = true;
    }
  } else if (f == "mxfp4") {
    m.format = FMT_MXFP4;
    if (m.cols % 32) throw Err{"mxfp4 cols must be a multiple of 32"};
    m.data = typed<uint8_t>(env, prop(env, o, "blocks"), napi_uint8_array, &n, "matrix.blocks");
    if (int64_t(n) < m.rows * m.cols / 2) throw Err{"matrix.blocks too short"};
    m.scales = typed<uint8_t>(env, prop(env, o, "scales"), napi_uint8_array, &n, "matrix.scales");
    if (int64_t(n) < m.rows * m.cols / 32) throw Err{"matrix.scales too short"};
    napi_value so = prop(env, o, "scalesOct");
    if (!is_null(env, so)) {
      m.scales_oct = typed<uint8_t>(env, so, napi_uint8_array, &n, "matrix.scalesOct");
      if (int64_t(n) < (m.rows + 7) / 8 * 8 * (m.cols / 32)) throw Err{"matrix.scalesOct too short"};
    }
    napi_value r16 = prop(env, o, "rows16");
    if (!is_null(env, r16)) {
      if (m.rows % 16) throw Err{"matrix.rows16: rows must be a multiple of 16"};
      m.rows16 = typed<uint8_t>(env, r16, napi_uint8_array, &n, "matrix.rows16");
      if (int64_t(n) < m.rows * m.cols / 2) throw Err{"matrix.rows16 too short"};
      m.scales16 = typed<uint8_t>(env, prop(env, o, "scales16"), napi_uint8_array, &n, "matrix.scales16");
      if (int64_t(n) < m.rows * m.cols / 32) throw Err{"matrix.scales16 too short"};
    }
  } else if (f == "fp8") {
    m.format = FMT_FP8;
    m.data = typed<uint8_t>(env, prop(env, o, "data"), napi_uint8_array, &n, "matrix.data");
    if (int64_t(n) < m.rows * m.cols) throw Err{"matrix.data too short"};
    m.block_rows = int64_t(num(env, prop(env, o, "blockRows")));
    m.block_cols = int64_t(num(env, prop(env, o, "blockCols")));
    if (m.block_rows < 1 || m.block_cols < 1) throw Err{"fp8 blockRows/blockCols must be positive"};
    m.block_scale = typed<float>(env, prop(env, o, "scales"), napi_float32_array, &n, "matrix.scales");
    if (int64_t(n) < (m.rows + m.block_rows - 1) / m.block_rows * ((m.cols + m.block_cols - 1) / m.block_cols))
      throw Err{"matrix.scales too short"};
  } else if (f == "nvfp4") {
    m.format = FMT_NVFP4;
    if (m.cols % 16) throw Err{"nvfp4 cols must be a multiple of 16"};
    m.data = typed<uint8_t>(env, prop(env, o, "packed"), napi_uint8_array, &n, "matrix.packed");
    if (int64_t(n) < m.rows * m.cols / 2) throw Err{"matrix.packed too short"};
    m.scales = typed<uint8_t>(env, prop(env, o, "scales"), napi_uint8_array, &n, "matrix.scales");
    if (int64_t(n) < m.rows * m.cols / 16) throw Err{"matrix.scales too short"};
    m.row_scale = typed<float>(env, prop(env, o, "rowScale2"), napi_float32_array, &n, "matrix.rowScale2");
    if (int64_t(n) < m.rows) throw Err{"matrix.rowScale2 too short"};
  } else {
    throw Err{"unsupported matrix format " + f};
  }
  return m;
}

Matrix row_slice(const Matrix& m, int64_t r0) {
  Matrix s = m;
  switch (m.format) {
    case FMT_F32: s.data = (const float*)m.data + r0 * m.cols; break;
    case FMT_BF16: s.data = (const uint16_t*)m.data + r0 * m.cols; break;
    case FMT_INT8:
      if (m.int8_rows16 && r0 % 16) throw Err{"int8 rows16 layout: a row slice must start on a set of 16 rows"};
      s.data = (const int8_t*)m.data + r0 * m.cols;
      s.row_scale = m.row_scale + r0;
      break;
    case FMT_MXFP4:
      s.data = (const uint8_t*)m.data + r0 * (m.cols / 32) * 16;
      s.scales = m.scales + r0 * (m.cols / 32);
      s.scales_oct = m.scales_oct && r0 % 8 == 0 ? m.scales_oct + r0 * (m.cols / 32) : nullptr;
      s.rows16 = m.rows16 && r0 % 16 == 0 ? m.rows16 + r0 * (m.cols / 32) * 16 : nullptr;
      s.scales16 = s.rows16 ? m.scales16 + r0 * (m.cols / 32) : nullptr;
      break;
    case FMT_FP8:
      if (r0 % m.block_rows) throw Err{"fp8: a row slice must start on a scale block"};
      s.data = (const uint8_t*)m.data + r0 * m.cols;
      s.block_scale = m.block_scale + r0 / m.block_rows * ((m.cols + m.block_cols - 1) / m.block_cols);
      break;
    case FMT_NVFP4:
      s.data = (const uint8_t*)m.data + r0 * m.cols / 2;
      s.scales = m.scales + r0 * m.cols / 16;
      s.row_scale = m.row_scale + r0;
      break;
  }
  return s;
}

// MXFP4 kernels read x with each 32-block's even inputs first, then the odd ones.
void deinterleave(const float* x, int64_t T, int64_t C, float* out) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t g = 0; g < C / 32; g++) {
      const float* s = x + t * C + g * 32;
      float* d = out + t * C + g * 32;
      for (int j = 0; j < 16; j++) {
        d[j] = s[2 * j];
        d[16 + j] = s[2 * j + 1];
      }
    }
}

// Per-call working memory that the calling thread keeps and reuses, never zeroed (every byte a
// kernel reads is written first), starting on a cache line (the kernels' 32-byte activation
// loads then never straddle two lines: straddling cost the token-lane MXFP4 kernel 16%). A
// 512-token prefill's MoE layer uses about 80 MB of it: taken fresh on every call, those pages
// were mapped, zeroed by the kernel and zeroed again by std::vector on each of the 24 layers.
// One slot per buffer that can be live at the same time.
enum ScratchSlot {
  SCRATCH_Q8_MXFP4, SCRATCH_Q8_INT8, SCRATCH_Q8_NVFP4, SCRATCH_DEINT,  // linear inputs, per weight format
  SCRATCH_LANES,                                                       // run_segments' token-lane copies
  SCRATCH_MOE_XT, SCRATCH_MOE_X, SCRATCH_MOE_A, SCRATCH_MOE_H, SCRATCH_MOE_Y,  // moe's stages
  SCRATCH_SLOTS
};
class Scratch {
 public:
  // n bytes from a cache line boundary (contents undefined)
  uint8_t* bytes(size_t n) {
    if (n > cap_) {
      raw_.reset(new uint8_t[n + 64]);
      cap_ = n;
    }
    return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw_.get()) + 63) & ~uintptr_t(63));
  }
  template <typename T>
  T* of(size_t count) { return reinterpret_cast<T*>(bytes(count * sizeof(T))); }

 private:
  std::unique_ptr<uint8_t[]> raw_;
  size_t cap_ = 0;
};
Scratch& scratch(ScratchSlot s) {
  thread_local Scratch slots[SCRATCH_SLOTS];
  return slots[s];
}

// One 32-input block → its int8 values q and scale d (amax / 127); returns Σq. v·(1/d) rounds
// half to even as nearbyint, without its libm call (this file is built for any x86-64, so
// nearbyintf is not inlined): adding and removing 1.5·2^23 rounds |v| ≤ 2^22 exactly so.
static int32_t q8_block_scalar(const float* xb, int64_t n, float* d_out, int8_t q[32]) {
  float amax = 0.f;
  for (int64_t j = 0; j < n; j++) amax = std::max(amax, std::fabs(xb[j]));
  const float d = amax / 127.f, id = d > 0.f ? 1.f / d : 0.f;
  int32_t Q = 0;
  for (int64_t j = 0; j < 32; j++) q[j] = 0;
  for (int64_t j = 0; j < n; j++) {
    float v = xb[j] * id;
    v = (v + 12582912.f) - 12582912.f;
    v = std::max(-127.f, std::min(127.f, v));
    q[j] = int8_t(v);
    Q += q[j];
  }
  *d_out = d;
  return Q;
}

// The same for a whole block with AVX2, bit for bit: maxps(|x|, m) keeps m where |x| is NaN, as
// std::max(m, |x|) does; minps / maxps with the bound second clamp as std::min / std::max do
// (a NaN becomes 127), and the values are whole numbers, so truncation converts them exactly.
__attribute__((target("avx2"))) static int32_t q8_block_avx2(const float* xb, float* d_out, int8_t q[32]) {
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 v[4], m = _mm256_setzero_ps();
  for (int i = 0; i < 4; i++) {
    v[i] = _mm256_loadu_ps(xb + 8 * i);
    m = _mm256_max_ps(_mm256_and_ps(v[i], absmask), m);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float amax = 0.f;
  for (int j = 0; j < 8; j++) amax = std::max(amax, lanes[j]);
  const float d = amax / 127.f, id = d > 0.f ? 1.f / d : 0.f;
  const __m256 vid = _mm256_set1_ps(id), magic = _mm256_set1_ps(12582912.f), hi = _mm256_set1_ps(127.f), lo = _mm256_set1_ps(-127.f);
  __m256i qi[4], sum = _mm256_setzero_si256();
  for (int i = 0; i < 4; i++) {
    __m256 r = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(v[i], vid), magic), magic);
    r = _mm256_max_ps(_mm256_min_ps(r, hi), lo);
    qi[i] = _mm256_cvttps_epi32(r);
    sum = _mm256_add_epi32(sum, qi[i]);
  }
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  alignas(32) int32_t s8[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(s8), sum);
  *d_out = d;
  return s8[0] + s8[1] + s8[2] + s8[3] + s8[4] + s8[5] + s8[6] + s8[7];
}
bool q8_avx2 = false;  // set by init where the CPU has AVX2

// q[2j] → even[j], q[2j+1] → odd[j] for j < 16 (the MXFP4 / NVFP4 records' halves)
__attribute__((target("avx2"))) static void q8_split_avx2(const int8_t q[32], uint8_t* even, uint8_t* odd) {
  const __m128i pick = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m128i a = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), pick);
  const __m128i b = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16)), pick);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(even), _mm_unpacklo_epi64(a, b));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(odd), _mm_unpackhi_epi64(a, b));
}

// One token's activations → its q8 record (q8_token_bytes(fmt, C) bytes at rec0); only the
// groups of inputs [g0, g1) × q8_group_cols(fmt) (all of them by default): x is the whole row.
void q8_token(int fmt, const float* x, int64_t C, uint8_t* rec0, int64_t g0 = 0, int64_t g1 = -1) {
  const int64_t GC = q8_group_cols(fmt), GB = q8_group_bytes(fmt);
  if (g1 < 0) g1 = (C + GC - 1) / GC;
  std::memset(rec0 + g0 * GB, 0, size_t((g1 - g0) * GB));
  const int64_t nblocks = std::min((C + 31) / 32, g1 * GC / 32);
  for (int64_t b = g0 * GC / 32; b < nblocks; b++) {
    const int64_t c0 = b * 32, n = std::min<int64_t>(32, C - c0);
    alignas(32) int8_t q[32];
    float d;
    const int32_t Q = q8_avx2 && n == 32 ? q8_block_avx2(x + c0, &d, q) : q8_block_scalar(x + c0, n, &d, q);
    uint8_t* rec = rec0 + (c0 / GC) * GB;
    const int64_t k = (c0 % GC) / 32;  // block within the group
    int32_t* corr = reinterpret_cast<int32_t*>(rec + GC);
    float* dxl = reinterpret_cast<float*>(rec + GC + 64);
    if (fmt == FMT_MXFP4 || fmt == FMT_NVFP4) {
      // (byte by byte, this split was most of the time to quantise a token: the MoE's second
      // projection quantises every pair's activations, 64 pairs at 16 sequences of gpt-oss)
      if (q8_avx2) q8_split_avx2(q, rec + 16 * k, rec + 64 + 16 * k);
      else
        for (int j = 0; j < 16; j++) {
          rec[16 * k + j] = uint8_t(q[2 * j]);
          rec[64 + 16 * k + j] = uint8_t(q[2 * j + 1]);
        }
      if (fmt == FMT_MXFP4) corr[4 * k] = -12 * Q;
      else {  // one sum per 16 inputs
        int32_t qa = 0;
        for (int j = 0; j < 16; j++) qa += q[j];
        corr[4 * k] = -12 * qa;
        corr[4 * k + 1] = -12 * (Q - qa);
      }
      for (int j = 0; j < 4; j++) dxl[4 * k + j] = 0.5f * d;
    } else {
      for (int j = 0; j < 32; j++) rec[32 * k + j] = uint8_t(q[j]);
      corr[8 * k] = -128 * Q;
      for (int j = 0; j < 8; j++) dxl[8 * k + j] = d;
    }
  }
}

// Quantises activations to q8 in the layout the integer kernels read (kernels.h). Every ISA
// gets the same values (q8_block_avx2 gives the scalar code's bits), round to nearest even.
void prepare_q8(int fmt, const float* x, int64_t T, int64_t C, uint8_t* dst) {
  const int64_t xs = q8_token_bytes(fmt, C);
  auto token = [&](int64_t t) { q8_token(fmt, x + t * C, C, dst + t * xs); };
  if (T >= 8) pool->parallel_for(T, token);
  else
    for (int64_t t = 0; t < T; t++) token(t);
}

// (NVFP4 with an odd number of 16-input blocks keeps f32 activations: its q8 kernels read whole 32-blocks)
bool q8_format(const Matrix& w) { return w.format == FMT_MXFP4 || w.format == FMT_INT8 || (w.format == FMT_NVFP4 && w.cols % 32 == 0); }

// T tokens' MXFP4 / NVFP4 q8 records (stride xs) → the token-lane layout of linear_rows_q8_t8
// (kernels.h) (the octs [o0, o1) only: callers split the work)
void q8_token_lanes(int fmt, const uint8_t* xq, int64_t xs, int64_t T, int64_t C, uint8_t* xt, int64_t o0, int64_t o1) {
  const int64_t G = C / 32, BB = q8_t8_block_bytes(fmt);
  std::memset(xt + o0 * G * BB, 0, size_t((o1 - o0) * G * BB));
  for (int64_t t = o0 * 8; t < std::min(T, o1 * 8); t++) {
    const int64_t o = t / 8, j = t % 8;
    for (int64_t b = 0; b < G; b++) {
      const uint8_t* rec = xq + t * xs + (b / 4) * q8_group_bytes(FMT_MXFP4);
      const int64_t k = b % 4;
      uint8_t* d = xt + (o * G + b) * BB;
      for (int c = 0; c < 4; c++) {
        std::memcpy(d + 32 * c + 4 * j, rec + 16 * k + 4 * c, 4);
        std::memcpy(d + 32 * (4 + c) + 4 * j, rec + 64 + 16 * k + 4 * c, 4);
      }
      std::memcpy(d + 256 + 4 * j, rec + 128 + 16 * k, 4);  // corr of the block (its first lane)
      std::memcpy(d + 288 + 4 * j, rec + 192 + 16 * k, 4);  // dx of the block
      if (fmt == FMT_NVFP4) std::memcpy(d + 320 + 4 * j, rec + 132 + 16 * k, 4);  // corr of inputs 16–31
    }
  }
}

// token-lane kernels pay off from one full oct of tokens for MXFP4 (below that, 7 of 8 lanes would
// idle), from two for NVFP4 (per token, 3712 × 2688 from DRAM on 2 threads: 12 tokens 30 cycles
// per block against 25 for rows in lanes, 24 tokens 24 against 27, 64 and 256 tokens 17 against 26)
bool use_t8(const Matrix& w, int64_t T) {
  return K->linear_rows_q8_t8 && ((w.format == FMT_MXFP4 && T >= 8) || (w.format == FMT_NVFP4 && T >= 16));
}

// One linear segment of a multi-linear job: f32 activations x, or q8 activations xq.
struct Segment {
  Matrix w;
  const float* x;
  int64_t T;
  const float* bias;
  float* y;
  const uint8_t* xq = nullptr;
  const uint8_t* xt = nullptr;  // token-lane activations (set by run_segments where they pay)
};

// Run several independent linears (e.g. all active experts) as one parallel job.
// Takes the segments by value (it sets their token-lane pointers); callers move theirs in.
void run_segments(std::vector<Segment> segs) {
  // token-lane copies of the q8 activations for the segments with many tokens
  std::vector<int64_t> off(segs.size() + 1, 0);
  for (size_t i = 0; i < segs.size(); i++)
    off[i + 1] = off[i] + (segs[i].xq && use_t8(segs[i].w, segs[i].T) ? q8_t8_bytes(segs[i].w.format, segs[i].T, segs[i].w.cols) : 0);
  uint8_t* const lanes = off.back() ? scratch(SCRATCH_LANES).bytes(size_t(off.back())) : nullptr;
  if (off.back()) {
    std::vector<std::pair<int, int64_t>> jobs;  // (segment, first oct): 4 octs a job
    for (size_t i = 0; i < segs.size(); i++) {
      if (off[i + 1] == off[i]) continue;
      segs[i].xt = lanes + off[i];
      for (int64_t o = 0; o < (segs[i].T + 7) / 8; o += 4) jobs.push_back({int(i), o});
    }
    pool->parallel_for(int64_t(jobs.size()), [&](int64_t j) {
      const Segment& s = segs[jobs[j].first];
      const int64_t o0 = jobs[j].second;
      q8_token_lanes(s.w.format, s.xq, q8_token_bytes(s.w.format, s.w.cols), s.T, s.w.cols, lanes + off[jobs[j].first], o0,
                     std::min((s.T + 7) / 8, o0 + 4));
    });
  }
  struct Task {
    int seg;
    int64_t r0, r1, t0, t1;
  };
  std::vector<Task> tasks;
  int64_t total_rows = 0, maxT = 0;
  for (auto& s : segs) {
    total_rows += s.w.rows;
    maxT = std::max(maxT, s.T);
  }
  const int64_t threads = pool->size();
  // decode (≤ 16 tokens: bound by the weights' stream) in 2 chunks a thread, longer jobs in 4
  const bool decode = maxT <= 16;
  const int64_t chunk = std::max<int64_t>(32, ((total_rows / (threads * (decode ? 2 : 4))) + 31) / 32 * 32);
  int64_t row_tasks = 0;
  for (auto& s : segs) row_tasks += (s.w.rows + chunk - 1) / chunk;
  // too few rows to share (a router's 32 over 512 tokens ran on one thread): split the tokens
  // too, in whole octs (the token-lane layout's unit); no output depends on its neighbours
  int64_t pieces = 1;
  if (row_tasks < 2 * threads && maxT >= 16) pieces = std::min((maxT + 7) / 8, (4 * threads + row_tasks - 1) / row_tasks);
  // decode: all the segments' rows as one row space (each segment's rounded up to 32), cut in
  // chunks, and the last quarter in chunks of 1/2, so that the threads finish within a small
  // task of each other; a task may end one segment and begin the next (q, k and v; an MoE's
  // experts). The tasks are few because each costs a new stream's start (fetching its first 4 KB
  // at once did not recover that). On Zen 5 (2 threads, ~95 GB/s), decoding gpt-oss-20b,
  // interleaved step by step in one process:
  // - per-segment tasks (k and v of 512 rows apart from q's 4096) against this one row space:
  //   1 sequence 32.50 → 32.15 ms a step (median), 4 sequences 71.7 → 70.0, 16 sequences 165.4 → 164.6;
  // - 4 chunks a thread with a tail in eighths (a Xeon KVM guest's rule at 16-25 GB/s, where it
  //   gained 2-5%) against 2 chunks and halves: 34.3-34.7 against 33.2-33.4 ms (1 sequence);
  //   without the tail, 33.2-33.3.
  const int64_t small = std::max<int64_t>(32, (chunk / 2 + 31) / 32 * 32);
  // task g runs tasks[first[g]] .. tasks[first[g + 1] - 1] in order
  std::vector<int64_t> first;
  if (decode && pieces == 1) {
    std::vector<int64_t> base(segs.size() + 1, 0);
    for (size_t i = 0; i < segs.size(); i++) base[i + 1] = base[i] + (segs[i].w.rows + 31) / 32 * 32;
    const int64_t all = base.back(), split = std::max<int64_t>(0, (all - std::max(chunk, all / 4)) / 32 * 32);
    size_t i = 0;
    for (int64_t r = 0; r < all;) {
      const bool head = r < split;
      const int64_t r1 = std::min(head ? split : all, r + (head ? chunk : small));
      first.push_back(int64_t(tasks.size()));
      // the segments over [r, r1): each one's part of it (starting on a multiple of 32 rows)
      for (; i < segs.size() && base[i] < r1; i++) {
        const int64_t a = std::max(r, base[i]) - base[i], b = std::min(r1, base[i] + segs[i].w.rows) - base[i];
        if (a < b && segs[i].T > 0) tasks.push_back({int(i), a, b, 0, segs[i].T});
        if (base[i + 1] > r1) break;  // it goes on in the next task
      }
      r = r1;
    }
    first.push_back(int64_t(tasks.size()));
  } else {
    for (size_t i = 0; i < segs.size(); i++) {
      const int64_t T = segs[i].T, tc = pieces > 1 ? ((T + pieces - 1) / pieces + 7) / 8 * 8 : std::max<int64_t>(T, 1);
      // (every task starts on a multiple of 32 rows: the kernels take rows from a set of 16)
      // (decode with the tokens split: each segment's last quarter in chunks of 1/2)
      const int64_t rows = segs[i].w.rows, split = decode ? std::max<int64_t>(0, (rows - std::max(chunk, rows / 4)) / 32 * 32) : rows;
      for (int64_t r = 0; r < rows;) {
        const bool head = r < split;
        const int64_t r1 = std::min(head ? split : rows, r + (head ? chunk : small));
        for (int64_t t = 0; t < T; t += tc) tasks.push_back({int(i), r, r1, t, std::min(T, t + tc)});
        r = r1;
      }
    }
    // the costliest first (rows × tokens: a prefill's experts have 30 to 120 tokens each), so that
    // the threads' last tasks are small ones and they finish together
    std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return (a.r1 - a.r0) * (a.t1 - a.t0) > (b.r1 - b.r0) * (b.t1 - b.t0); });
    for (size_t i = 0; i <= tasks.size(); i++) first.push_back(int64_t(i));
  }
  pool->parallel_for(int64_t(first.size()) - 1, [&](int64_t g) {
    for (int64_t i = first[g]; i < first[g + 1]; i++) {
      const Task& t = tasks[i];
      const Segment& s = segs[t.seg];
      const int64_t n = t.t1 - t.t0, ys = s.w.rows;
      float* y = s.y + t.t0 * ys;
      if (s.xt) K->linear_rows_q8_t8(s.w, s.xt + t.t0 / 8 * (s.w.cols / 32) * q8_t8_block_bytes(s.w.format), n, s.bias, y, ys, t.r0, t.r1);
      else if (s.xq) K->linear_rows_q8(s.w, s.xq + t.t0 * q8_token_bytes(s.w.format, s.w.cols), n, s.bias, y, ys, t.r0, t.r1);
      else K->linear_rows(s.w, s.x + t.t0 * s.w.cols, n, s.bias, y, ys, t.r0, t.r1);
    }
  });
}

napi_value wrap(napi_env env, napi_callback_info info, napi_value (*fn)(napi_env, napi_callback_info)) {
  FlushDenormals ftz;
  try {
    return fn(env, info);
  } catch (const Err& e) {
    napi_throw_type_error(env, nullptr, e.msg.c_str());
    return nullptr;
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
    return nullptr;
  }
}

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// AMX tiles need the CPU's flags and Linux's leave to use their state (asked once per process:
// ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA; kernels before 5.16 refuse it). The AMX build also
// uses AVX-512 VBMI (every CPU with AMX has it).
bool amx_usable() {
  static const bool ok = __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-int8") && __builtin_cpu_supports("avx512vbmi") &&
                         syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
  return ok;
}

// init(threads, isa) → "amx" | "avx512vnni" | "avx512" | "avx2" | "generic"
napi_value Init(napi_env env, napi_callback_info info) {
  Args a(env, info, 2);
  int threads = int(num(env, a.v[0]));
  std::string want = str(env, a.v[1]);
  __builtin_cpu_init();
  bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  q8_avx2 = __builtin_cpu_supports("avx2");
  bool hasVnni = has512 && __builtin_cpu_supports("avx512vnni");
  if (want == "avx512" && !has512) throw Err{"this CPU lacks AVX-512"};
  if (want == "avx512vnni" && !hasVnni) throw Err{"this CPU lacks AVX-512 VNNI"};
  const bool hasAmx = hasVnni && (want == "amx" || want == "auto") && amx_usable();
  if (want == "amx" && !hasAmx) throw Err{"this CPU lacks AMX int8 tiles (or the kernel does not allow them)"};
  if (want == "avx2" && !has2) throw Err{"this CPU lacks AVX2/FMA"};
  if (want == "generic") K = &kernels_generic();
  else if (want == "avx2") K = &kernels_avx2();
  else if (hasAmx) K = &kernels_amx();
  else if (want == "avx512vnni" || (want == "auto" && hasVnni)) K = &kernels_avx512vnni();
  else if (want == "avx512" || (want == "auto" && has512)) K = &kernels_avx512();
  else if (has2) K = &kernels_avx2();
  else K = &kernels_generic();
  if (threads < 1) threads = 1;
  pool.reset(new ThreadPool(threads));
  pool->set_epilogue(K->clear_upper);
  napi_value r;
  NAPI(napi_create_string_utf8(env, K->isa, NAPI_AUTO_LENGTH, &r));
  return r;
}

void need_init() {
  if (!K || !pool) throw Err{"native backend not initialised"};
}

// int8 weights in the rows16 layout are read by the AVX-512 VNNI q8 kernel only
void check_layout(const Matrix& w, bool q8) {
  if (w.int8_rows16 && !(q8 && K->q8_reads_rows16))
    throw Err{std::string("int8 weights in the rows16 layout need q8 activations on the AVX-512 VNNI kernels (this call: ") +
              (q8 ? K->isa : "f32 activations") + ")"};
}

// The inputs of linears of one x[T, cols], each prepared once for the weight formats that read
// it: q8 records (MXFP4 and INT8 layouts differ), or f32 de-interleaved for MXFP4's f32 kernels.
struct LinearInputs {
  const float* x;
  int64_t T;
  bool q8;
  std::map<int, const uint8_t*> q8_in;
  const float* deint = nullptr;
  Segment segment(const Matrix& w, const float* bias, float* y) {
    check_layout(w, q8);
    Segment s{w, x, T, bias, y};
    if (q8 && q8_format(w)) {
      auto it = q8_in.find(w.format);
      if (it == q8_in.end()) {
        const ScratchSlot slot = w.format == FMT_MXFP4 ? SCRATCH_Q8_MXFP4 : w.format == FMT_NVFP4 ? SCRATCH_Q8_NVFP4 : SCRATCH_Q8_INT8;
        uint8_t* dst = scratch(slot).bytes(size_t(T * q8_token_bytes(w.format, w.cols)));
        prepare_q8(w.format, x, T, w.cols, dst);
        it = q8_in.emplace(w.format, dst).first;
      }
      s.xq = it->second;
    } else if (w.format == FMT_MXFP4) {
      if (!deint) {
        float* d = scratch(SCRATCH_DEINT).of<float>(size_t(T * w.cols));
        deinterleave(x, T, w.cols, d);
        deint = d;
      }
      s.x = deint;
    }
    return s;
  }
};

// linear(x, T, w, bias|null, y, q8?): q8 quantises the activations for MXFP4 / INT8 weights
napi_value Linear(napi_env env, napi_callback_info info) {
  need_init();
  Args a(env, info, 6, 5);
  size_t nx, ny;
  const float* x = typed<float>(env, a.v[0], napi_float32_array, &nx, "x");
  int64_t T = int64_t(num(env, a.v[1]));
  Matrix w = matrix(env, a.v[2]);
  const float* bias = is_null(env, a.v[3]) ? nullptr : typed<float>(env, a.v[3], napi_float32_array, nullptr, "bias");
  float* y = typed<float>(env, a.v[4], napi_float32_array, &ny, "y");
  if (int64_t(nx) < T * w.cols || int64_t(ny) < T * w.rows) throw Err{"linear: x or y too short"};
  LinearInputs in{x, T, flag(env, a.v[5])};
  run_segments({in.segment(w, bias, y)});
  return undefined(env);
}

napi_value element(napi_env env, napi_value arr, uint32_t i) {
  napi_value r;
  NAPI(napi_get_element(env, arr, i, &r));
  return r;
}

uint32_t array_length(napi_env env, napi_value v, const char* what) {
  bool ok = false;
  NAPI(napi_is_array(env, v, &ok));
  if (!ok) throw Err{std::string(what) + ": expected an array"};
  uint32_t n;
  NAPI(napi_get_array_length(env, v, &n));
  return n;
}

// linearMany(x, T, [w], [bias|null], [y], q8?): several linears of the same input (q, k and v of
// an attention layer) as one job of the pool, the input prepared once per weight format
napi_value LinearMany(napi_env env, napi_callback_info info) {
  need_init();
  Args a(env, info, 6, 5);
  size_t nx;
  const float* x = typed<float>(env, a.v[0], napi_float32_array, &nx, "x");
  const int64_t T = int64_t(num(env, a.v[1]));
  const uint32_t n = array_length(env, a.v[2], "linearMany: weights");
  if (array_length(env, a.v[3], "linearMany: biases") != n || array_length(env, a.v[4], "linearMany: outputs") != n)
    throw Err{"linearMany: weights, biases and outputs differ in length"};
  LinearInputs in{x, T, flag(env, a.v[5])};
  std::vector<Segment> segs;
  for (uint32_t i = 0; i < n; i++) {
    Matrix w = matrix(env, element(env, a.v[2], i));
    if (i > 0 && w.cols != segs[0].w.cols) throw Err{"linearMany: the weights differ in input width"};
    napi_value bv = element(env, a.v[3], i);
    const float* bias = is_null(env, bv) ? nullptr : typed<float>(env, bv, napi_float32_array, nullptr, "bias");
    size_t ny;
    float* y = typed<float>(env, element(env, a.v[4], i), napi_float32_array, &ny, "y");
    if (int64_t(nx) < T * w.cols || int64_t(ny) < T * w.rows) throw Err{"linearMany: x or y too short"};
    segs.push_back(in.segment(w, bias, y));
  }
  run_segments(std::move(segs));
  return undefined(env);
}

// rmsNorm(x, T, weight, eps, y)
napi_value RmsNorm(napi_env env, napi_callback_info info) {
  need_init();
  Args a(env, info, 5);
  size_t nx, H;
  const float* x = typed<float>(env, a.v[0], napi_float32_array, &nx, "x");
  int64_t T = int64_t(num(env, a.v[1]));
  const float* w = typed<float>(env, a.v[2], napi_float32_array, &H, "weight");
  float eps = float(num(env, a.v[3]));
  float* y = typed<float>(env, a.v[4], napi_float32_array, nullptr, "y");
  if (int64_t(nx) < T * int64_t(H)) throw Err{"rmsNorm: x too short"};
  // each token's sum of squares in double, in 8 interleaved partial sums (lane l: inputs l, l+8,
  // …) added up in a fixed order, the same for every token whatever shares the batch (summed in
  // order, one chain of dependent adds, a call on one 2880-wide row took 2.0 µs on Zen 5 against
  // 0.72; gpt-oss-20b normalises 49 rows a decoded token); tokens in groups of 4 over the threads
  auto group = [&](int64_t g) {
    const int64_t t0 = g * 4, n = std::min<int64_t>(4, T - t0);
    for (int64_t j = 0; j < n; j++) {
      const float* xr = x + (t0 + j) * H;
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      size_t i = 0;
      for (; i + 8 <= H; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += double(xr[i + l]) * xr[i + l];
      for (int l = 0; i < H; i++, l++) acc[l] += double(xr[i]) * xr[i];
      const double ss = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
      const float inv = 1.f / std::sqrt(float(ss / H) + eps);
      for (size_t c = 0; c < H; c++) y[(t0 + j) * H + c] = (xr[c] * inv) * w[c];
    }
  };
  const int64_t groups = (T + 3) / 4;
  if (T >= 8) pool->parallel_for(groups, group);
  else
    for (int64_t g = 0; g < groups; g++) group(g);
  return undefined(env);
}

// addInPlace(x, y): x += y (a residual connection: 16 tokens of gpt-oss-20b, 46080 values, took
// 49 µs in JS, twice a layer)
napi_value AddInPlace(napi_env env, napi_callback_info info) {
  need_init();
  Args a(env, info, 2);
  size_t n, ny;
  float* x = typed<float>(env, a.v[0], napi_float32_array, &n, "x");
  const float* y = typed<float>(env, a.v[1], napi_float32_array, &ny, "y");
  if (n != ny) throw Err{"addInPlace: x holds " + std::to_string(n) + " values and y " + std::to_string(ny)};
  for (size_t i = 0; i < n; i++) x[i] += y[i];
  return undefined(env);
}

// rope(x, T, nHeads, headDim, positions, invFreq, concentration, rotaryDim)
napi_value Rope(napi_env env, napi_callback_info info) {
  need_init();
  Args a(env, info, 8);
  float* x = typed<float>(env, a.v[0], napi_float32_array, nullptr, "x");
  int64_t T = int64_t(num(env, a.v[1])), nh = int64_t(num(env, a.v[2])), d = int64_t(num(env, a.v[3]));
  const int32_t* pos = typed<int32_t>(env, a.v[4], napi_int32_array, nullptr, "positions");
  const float* inv = typed<float>(env, a.v[5], napi_float32_array, nullptr, "invFreq");
  float conc = float(num(env, a.v[6]));
  int64_t half = int64_t(num(env, a.v[7])) / 2;
  // the angles' cos and sin per token, kept for the next call with the same positions and
  // frequencies (a forward rotates q and k of every layer at its batch's positions: 48 calls of
  // gpt-oss-20b, each 16 tokens × 32 frequencies of cos and sin, 10 µs a call before)
  struct Table {
    std::vector<int32_t> pos;
    std::vector<float> inv, c, s;
    float conc = 0;
  };
  thread_local Table tab;  // (per JS thread: engines in worker threads share the addon)
  const bool same = int64_t(tab.pos.size()) == T && int64_t(tab.inv.size()) == half && tab.conc == conc &&
                    std::equal(pos, pos + T, tab.pos.begin()) && std::equal(inv, inv + half, tab.inv.begin());
  if (!same) {
    tab.pos.assign(pos, pos + T);
    tab.inv.assign(inv, inv + half);
    tab.conc = conc;
    tab.c.resize(size_t(T * half));
    tab.s.resize(size_t(T * half));
    for (int64_t t = 0; t < T; t++)
      for (int64_t i = 0; i < half; i++) {
        float ang = float(pos[t]) * inv[i];
        tab.c[t * half + i] = std::cos(ang) * conc;
        tab.s[t * half + i] = std::sin(ang) * conc;
      }
  }
  for (int64_t t = 0; t < T; t++) {
    const float* c = tab.c.data() + t * half;
    const float* s = tab.s.data() + t * half;
    for (int64_t h = 0; h < nh; h++) {
      float* v = x + (t * nh + h) * d;
      for (int64_t i = 0; i < half; i++) {
        float x1 = v[i], x2 = v[half + i];
        v[i] = x1 * c[i] - x2 * s[i];
        v[half + i] = x2 * c[i] + x1 * s[i];
      }
    }
  }
  return undefined(env);
}

// float → 16-bit float bits, round to nearest even, in integer arithmetic (the same bits as
// f32ToF16 / f32ToBf16 in src/weights/dtypes.ts, whatever the FPU's flush modes)
static inline uint16_t f32_to_f16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint32_t sign = (u >> 16) & 0x8000, e = (u >> 23) & 0xff, m = u & 0x7fffff;
  if (e == 0xff) return uint16_t(sign | 0x7c00 | (m ? 0x200 | (m >> 13) : 0));
  const int32_t he = int32_t(e) - 112;
  if (he >= 31) return uint16_t(sign | 0x7c00);
  if (he >= 1) {
    const uint32_t rem = m & 0x1fff, v = (uint32_t(he) << 10) | (m >> 13);
    return uint16_t(sign | (v + ((rem > 0x1000 || (rem == 0x1000 && (v & 1))) ? 1 : 0)));
  }
  const int32_t shift = 14 - he;
  if (e == 0 || shift > 24) return uint16_t(sign);
  const uint32_t M = m | 0x800000, q = M >> shift, rem = M & ((1u << shift) - 1), half = 1u << (shift - 1);
  return uint16_t(sign | (q + ((rem > half || (rem == half && (q & 1))) ? 1 : 0)));
}
static inline uint16_t f32_to_bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 0x40);
  return uint16_t((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

// one KV head's k and v rows (n values) into the caches at element offset `at`
static void write_kv(int kv_type, const float* k, const float* v, int64_t n, void* kc, void* vc, int64_t at) {
  if (kv_type == KV_F32) {
    std::memcpy((float*)kc + at, k, n * 4);
    std::memcpy((float*)vc + at, v, n * 4);
    return;
  }
  uint16_t* ko = (uint16_t*)kc + at;
  uint16_t* vo = (uint16_t*)vc + at;
  for (int64_t i = 0; i < n; i++) {
    ko[i] = kv_type == KV_F16 ? f32_to_f16_bits(k[i]) : f32_to_bf16_bits(k[i]);
    vo[i] = kv_type == KV_F16 ? f32_to_f16_bits(v[i]) : f32_to_bf16_bits(v[i]);
  }
}

// attention(q, k, v, T, kcache, vcache, nKv, headDim, blockSize, positions, slotMapping,
//           seqStart, seqLen, blockTables, blockTableOffsets, nHeads, scale, window, sinks|null, out,
//           dtype = "f32" | "f16" | "bf16")
napi_value Attention(napi_env env, napi_callback_info info) {
  need_init();
  Args a(env, info, 21, 20);
  const float* q = typed<float>(env, a.v[0], napi_float32_array, nullptr, "q");
  const float* k = typed<float>(env, a.v[1], napi_float32_array, nullptr, "k");
  const float* v = typed<float>(env, a.v[2], napi_float32_array, nullptr, "v");
  int64_t T = int64_t(num(env, a.v[3]));
  // the cache's element type: "f32" (Float32Array) or "f16" / "bf16" (Uint16Array of bits)
  const std::string dt = is_null(env, a.v[20]) ? "f32" : str(env, a.v[20]);
  const int kv_type = dt == "f32" ? KV_F32 : dt == "f16" ? KV_F16 : dt == "bf16" ? KV_BF16 : -1;
  if (kv_type < 0) throw Err{"attention: unknown KV cache dtype \"" + dt + "\" (expected f32, f16 or bf16)"};
  const napi_typedarray_type cache_arr = kv_type == KV_F32 ? napi_float32_array : napi_uint16_array;
  size_t ncache, nvcache;
  void* kc = typed<uint8_t>(env, a.v[4], cache_arr, &ncache, "kcache");
  void* vc = typed<uint8_t>(env, a.v[5], cache_arr, &nvcache, "vcache");
  if (nvcache != ncache) throw Err{"attention: the k and v caches differ in size"};
  int64_t nkv = int64_t(num(env, a.v[6])), d = int64_t(num(env, a.v[7])), bs = int64_t(num(env, a.v[8]));
  const int32_t* pos = typed<int32_t>(env, a.v[9], napi_int32_array, nullptr, "positions");
  const int32_t* slot = typed<int32_t>(env, a.v[10], napi_int32_array, nullptr, "slotMapping");
  size_t nseq;
  const int32_t* qs = typed<int32_t>(env, a.v[11], napi_int32_array, &nseq, "seqStart");
  const int32_t* ql = typed<int32_t>(env, a.v[12], napi_int32_array, nullptr, "seqLen");
  size_t nbt;
  const int32_t* bt = typed<int32_t>(env, a.v[13], napi_int32_array, &nbt, "blockTables");
  const int32_t* bto = typed<int32_t>(env, a.v[14], napi_int32_array, nullptr, "blockTableOffsets");
  int64_t nh = int64_t(num(env, a.v[15]));
  float scale = float(num(env, a.v[16]));
  int64_t window = int64_t(num(env, a.v[17]));
  const float* sinks = is_null(env, a.v[18]) ? nullptr : typed<float>(env, a.v[18], napi_float32_array, nullptr, "sinks");
  float* out = typed<float>(env, a.v[19], napi_float32_array, nullptr, "out");
  const int64_t kvw = nkv * d;
  const int64_t nslots = int64_t(ncache) / kvw;
  if (int64_t(ncache) % (bs * kvw)) throw Err{"attention: the cache is not a whole number of blocks"};
  // every block a query reads (a sliding window's table holds -1 for blocks behind it)
  for (size_t sq = 0; sq < nseq; sq++) {
    if (ql[sq] <= 0) continue;
    const int64_t p0 = pos[qs[sq]], p1 = pos[qs[sq] + ql[sq] - 1];
    const int64_t lo = window > 0 ? std::max<int64_t>(0, p0 - window + 1) : 0;
    for (int64_t b = lo / bs; b <= p1 / bs; b++) {
      const int64_t i = bto[sq] + b;
      if (i >= int64_t(nbt) || bt[i] < 0 || bt[i] >= nslots / bs) throw Err{"attention: block id out of range"};
    }
  }
  for (int64_t t = 0; t < T; t++)
    if (slot[t] < 0 || slot[t] >= nslots) throw Err{"attention: slot out of range"};
  // the cache is [block][kv head][offset in block][d] (backend.ts, kvOffset): row (block·nkv + kh)·bs + offset
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < nkv; h++) {
      const int64_t row = (slot[t] / bs * nkv + h) * bs + slot[t] % bs;
      write_kv(kv_type, k + t * kvw + h * d, v + t * kvw + h * d, d, kc, vc, row * d);
    }
  // token → sequence
  std::vector<int32_t> seq_of(T);
  for (size_t s = 0; s < nseq; s++)
    for (int32_t i = 0; i < ql[s]; i++) seq_of[qs[s] + i] = int32_t(s);
  const int64_t group = nh / nkv;
  // one task per (token, kv head): the q heads of a group share the gathered keys. Tasks run
  // head by head, so that a prefill's consecutive tokens find that head's keys and values still
  // in L2 (token by token, all heads' rows went through it for every token)
  pool->parallel_for(T * nkv, [&](int64_t task) {
    thread_local std::vector<float> sc;
    thread_local std::vector<int32_t> slots;
    const int64_t t = task % T, kh = task / T;
    const int32_t s = seq_of[t];
    const int64_t p = pos[t];
    const int64_t lo = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
    const int64_t n = p - lo + 1;
    if (int64_t(sc.size()) < group * n) sc.resize(group * n);
    if (int64_t(slots.size()) < n) slots.resize(n);
    const int32_t* table = bt + bto[s];
    // the key rows of this KV head, block by block (no division per key)
    for (int64_t j = 0, ps = lo; j < n;) {
      const int64_t blk = ps / bs, off = ps % bs, take = std::min<int64_t>(bs - off, n - j);
      const int32_t base = int32_t((table[blk] * nkv + kh) * bs + off);
      for (int64_t i = 0; i < take; i++) slots[j + i] = base + int32_t(i);
      j += take;
      ps += take;
    }
    const int64_t h0 = kh * group;
    K->attend_group(q + (t * nh + h0) * d, kc, vc, kv_type, slots.data(), n, d, d, scale,
                    sinks ? sinks + h0 : nullptr, group, sc.data(), out + (t * nh + h0) * d);
  });
  return undefined(env);
}

// One projection of every expert (ExpertWeights in backend.ts): a stacked matrix whose expert e
// owns rows [e·rows, (e+1)·rows), or an array of one matrix per expert. Experts are read from JS
// only when a batch uses them: reading all of a 128-expert list on every call cost 0.3–0.45 ms per
// MoE layer, about 10 ms per decoded token of Nemotron 3 Nano.
struct ExpertMatrices {
  napi_env env;
  napi_value v;
  int64_t rows;
  const char* what;
  bool is_array = false;
  Matrix first;  // expert 0 (format and width of all)

  ExpertMatrices(napi_env env_, napi_value v_, int64_t E, int64_t rows_, const char* what_) : env(env_), v(v_), rows(rows_), what(what_) {
    NAPI(napi_is_array(env, v, &is_array));
    if (is_array) {
      uint32_t n;
      NAPI(napi_get_array_length(env, v, &n));
      if (int64_t(n) != E) throw Err{std::string("moe: ") + what + " lists " + std::to_string(n) + " experts, expected " + std::to_string(E)};
      first = matrix(env, element(env, v, 0));
      if (first.rows != rows) throw Err{std::string("moe: ") + what + "'s experts differ in format or shape"};
    } else {
      first = matrix(env, v);
      if (first.rows < E * rows) throw Err{std::string("moe: ") + what + " has fewer rows than numExperts × rows"};
      first.rows = rows;
    }
  }

  Matrix get(int64_t e) const {
    if (!is_array) {
      Matrix m = row_slice(first, e * rows);
      m.rows = rows;
      return m;
    }
    if (e == 0) return first;
    const Matrix m = matrix(env, element(env, v, uint32_t(e)));
    if (m.rows != rows || m.format != first.format || m.cols != first.cols)
      throw Err{std::string("moe: ") + what + "'s experts differ in format or shape"};
    return m;
  }
};

// moe(x, T, k, experts, weights, w1, b1|null, w2, b2|null, numExperts, w1Rows, dOut, act, alpha, limit, out)
// (w1, w2: a stacked matrix or a per-expert array, ExpertMatrices)
napi_value Moe(napi_env env, napi_callback_info info) {
  need_init();
  Args a(env, info, 17, 16);
  const float* x = typed<float>(env, a.v[0], napi_float32_array, nullptr, "x");
  int64_t T = int64_t(num(env, a.v[1])), k = int64_t(num(env, a.v[2]));
  const int32_t* ex = typed<int32_t>(env, a.v[3], napi_int32_array, nullptr, "experts");
  const float* ew = typed<float>(env, a.v[4], napi_float32_array, nullptr, "weights");
  const float* b1 = is_null(env, a.v[6]) ? nullptr : typed<float>(env, a.v[6], napi_float32_array, nullptr, "b1");
  const float* b2 = is_null(env, a.v[8]) ? nullptr : typed<float>(env, a.v[8], napi_float32_array, nullptr, "b2");
  int64_t E = int64_t(num(env, a.v[9])), R1 = int64_t(num(env, a.v[10])), dOut = int64_t(num(env, a.v[11]));
  if (E < 1 || R1 < 1 || dOut < 1) throw Err{"moe: numExperts, w1Rows and dOut must be positive"};
  if (k < 1 || k > 64) throw Err{"moe: k must be between 1 and 64"};
  const ExpertMatrices w1s(env, a.v[5], E, R1, "w1"), w2s(env, a.v[7], E, dOut, "w2");
  const Matrix& w1 = w1s.first;
  const Matrix& w2 = w2s.first;
  std::string act = str(env, a.v[12]);
  float alpha = float(num(env, a.v[13])), limit = float(num(env, a.v[14]));
  float* out = typed<float>(env, a.v[15], napi_float32_array, nullptr, "out");
  const int64_t dIn = w1.cols;
  const bool q8_1 = flag(env, a.v[16]) && q8_format(w1), q8_2 = flag(env, a.v[16]) && q8_format(w2);
  check_layout(w1, q8_1);
  check_layout(w2, q8_2);
  const bool swiglu = act == "swiglu_oai";
  const int64_t inter = swiglu ? R1 / 2 : R1;
  if (w2.cols != inter) throw Err{"moe: w2 cols do not match the activation width"};
  // group (token, slot) picks by expert, in token order
  std::vector<std::vector<int64_t>> picks(E);
  for (int64_t i = 0; i < T * k; i++) {
    if (ex[i] < 0 || ex[i] >= E) throw Err{"moe: expert id out of range"};
    picks[ex[i]].push_back(i);
  }
  std::vector<int64_t> active;
  for (int64_t e = 0; e < E; e++)
    if (!picks[e].empty()) active.push_back(e);
  // the (token, slot) picks in expert order: pair p belongs to active expert i when
  // off[i] ≤ p < off[i+1]; one buffer per stage for all experts
  const size_t na = active.size();
  std::vector<int64_t> off(na + 1, 0), pick_of;
  for (size_t i = 0; i < na; i++) {
    off[i + 1] = off[i] + int64_t(picks[active[i]].size());
    for (int64_t pk : picks[active[i]]) pick_of.push_back(pk);
  }
  const int64_t P = off[na];
  const int64_t xs1 = q8_1 ? q8_token_bytes(w1.format, dIn) : dIn * 4;
  const int64_t xs2 = q8_2 ? q8_token_bytes(w2.format, inter) : inter * 4;
  uint8_t* const X = scratch(SCRATCH_MOE_X).bytes(size_t(P * xs1));
  uint8_t* const A = scratch(SCRATCH_MOE_A).bytes(size_t(P * xs2));
  float* const H = scratch(SCRATCH_MOE_H).of<float>(size_t(P * R1));
  float* const Y = scratch(SCRATCH_MOE_Y).of<float>(size_t(P * dOut));
  // each stage's per-pair work runs on the pool, in chunks of pairs
  const int64_t PC = 4;
  auto pairs = [&](const std::function<void(int64_t)>& fn) {
    pool->parallel_for((P + PC - 1) / PC, [&](int64_t c) {
      for (int64_t p = c * PC; p < std::min(P, (c + 1) * PC); p++) fn(p);
    });
  };
  // gather the inputs: each token's q8 record made once and copied to its k pairs, or its
  // de-interleaved / plain f32 row
  uint8_t* Xt = nullptr;
  if (q8_1) {
    Xt = scratch(SCRATCH_MOE_XT).bytes(size_t(T * xs1));
    prepare_q8(w1.format, x, T, dIn, Xt);
  }
  pairs([&](int64_t p) {
    const int64_t t = pick_of[p] / k;
    uint8_t* dst = X + p * xs1;
    if (q8_1) std::memcpy(dst, Xt + t * xs1, size_t(xs1));
    else if (w1.format == FMT_MXFP4) deinterleave(x + t * dIn, 1, dIn, reinterpret_cast<float*>(dst));
    else std::memcpy(dst, x + t * dIn, dIn * 4);
  });
  std::vector<Segment> seg1, seg2;
  for (size_t i = 0; i < na; i++) {
    const int64_t e = active[i], n = off[i + 1] - off[i];
    Segment sg{w1s.get(e), reinterpret_cast<const float*>(X + off[i] * xs1), n, b1 ? b1 + e * R1 : nullptr, H + off[i] * R1};
    if (q8_1) sg.xq = X + off[i] * xs1;
    seg1.push_back(sg);
  }
  run_segments(std::move(seg1));
  // the activation, then the second projection's inputs, in pieces of whole q8 groups (128
  // inputs) so that a few pairs still spread over the threads (one token's 4 pairs of 2880
  // took 0.1 ms on one thread, 2-3% of a decoded token over 24 layers)
  const int64_t GC2 = 128, ng2 = (inter + GC2 - 1) / GC2;
  const int64_t pieces = P == 0 ? 1 : std::max<int64_t>(1, std::min(ng2, (4 * int64_t(pool->size()) + P - 1) / P));
  const int64_t gpp = (ng2 + pieces - 1) / pieces;  // groups per piece
  pool->parallel_for(P * pieces, [&](int64_t task) {
    const int64_t p = task / pieces, g0 = (task % pieces) * gpp, g1 = std::min(ng2, g0 + gpp);
    if (g0 >= g1) return;
    const int64_t c0 = g0 * GC2, c1 = std::min(inter, g1 * GC2);
    thread_local std::vector<float> av;
    av.resize(inter);
    const float* h = H + p * R1;
    if (swiglu) K->swiglu(h, c0, c1, alpha, limit, av.data());
    else
      for (int64_t c = c0; c < c1; c++) {
        const float v = std::max(0.f, h[c]);
        av[c] = v * v;
      }
    uint8_t* dst = A + p * xs2;
    // (q8 groups are 128 or 64 inputs and de-interleaving works per 32: pieces of 128 split neither)
    if (q8_2) q8_token(w2.format, av.data(), inter, dst, c0 / q8_group_cols(w2.format), (c1 + q8_group_cols(w2.format) - 1) / q8_group_cols(w2.format));
    else if (w2.format == FMT_MXFP4) deinterleave(av.data() + c0, 1, c1 - c0, reinterpret_cast<float*>(dst) + c0);
    else std::memcpy(dst + c0 * 4, av.data() + c0, size_t(c1 - c0) * 4);
  });
  for (size_t i = 0; i < na; i++) {
    const int64_t e = active[i], n = off[i + 1] - off[i];
    Segment sg{w2s.get(e), reinterpret_cast<const float*>(A + off[i] * xs2), n, b2 ? b2 + e * dOut : nullptr, Y + off[i] * dOut};
    if (q8_2) sg.xq = A + off[i] * xs2;
    seg2.push_back(sg);
  }
  run_segments(std::move(seg2));
  // combine per token, its picks in ascending expert order (slot order within an expert): the
  // same order whatever shares the batch
  std::vector<int64_t> pair_of(size_t(T * k));
  for (size_t i = 0; i < na; i++) {
    const auto& pk = picks[active[i]];
    for (size_t j = 0; j < pk.size(); j++) pair_of[pk[j]] = off[i] + int64_t(j);
  }
  auto combine = [&](int64_t t) {
    int64_t order[64];  // k ≤ 64 (checked above)
    for (int64_t j = 0; j < k; j++) order[j] = t * k + j;
    std::sort(order, order + k, [&](int64_t p, int64_t q) { return ex[p] != ex[q] ? ex[p] < ex[q] : p < q; });
    float* o = out + t * dOut;
    std::memset(o, 0, size_t(dOut) * 4);
    for (int64_t j = 0; j < k; j++) {
      const float w = ew[order[j]];
      const float* y = Y + pair_of[order[j]] * dOut;
      for (int64_t c = 0; c < dOut; c++) o[c] += w * y[c];
    }
  };
  if (T >= 8) pool->parallel_for(T, combine);
  else
    for (int64_t t = 0; t < T; t++) combine(t);
  return undefined(env);
}

void finalize_mapping(napi_env, void* data, void* hint) {
  munmap(data, size_t(reinterpret_cast<uintptr_t>(hint)));
}

// Transparent huge pages asked for on a file mapping (where the kernel has none, nothing
// changes). The page cache of a file read through such a mapping is filled with 2 MB folios,
// compacting memory where it must, and each is mapped by one page-table entry. gpt-oss-20b's
// experts streamed from the prepared store (Zen 5, 2 threads, decode): 652-676 µs a MoE layer
// from small folios (the store written while the page cache was full), 627-637 from 2 MB ones,
// three alternations of the store's state, 33.6-33.8 → 32.5-33.1 ms a token. Pages already in
// the page cache keep the folios they have.
void map_huge_hint(void* p, size_t size) {
#ifdef MADV_HUGEPAGE
  if (size) madvise(p, size, MADV_HUGEPAGE);
#endif
}
void populate(const void* p, size_t bytes);

// an ArrayBuffer over the mapping [p, p + size), unmapped when the buffer is collected
napi_value mapping_buffer(napi_env env, void* p, size_t size) {
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, size, finalize_mapping, reinterpret_cast<void*>(uintptr_t(size)), &ab) != napi_ok) {
    munmap(p, size);
    throw Err{"external array buffers are not allowed in this runtime"};
  }
  return ab;
}

// mapFile(path, lazy, huge) → ArrayBuffer over a read-only private mapping (zero-copy weights);
// the pages are faulted in at once unless `lazy` (then populatePages maps the ranges a loader
// uses, so that tensors it never reads, such as experts served from a prepared copy, stay on
// disk). `huge` (the prepared store's files, read whole) asks for transparent huge pages before
// any page is read: where the file system keeps large folios (ext4 on Linux 6.18 here) the pages
// read from disk then come in 2 MB folios mapped by one entry each (see map_huge_hint).
napi_value MapFile(napi_env env, napi_callback_info info) {
  Args a(env, info, 3, 1);
  const bool lazy = flag(env, a.v[1]);
  const bool huge = flag(env, a.v[2]);
  char path[4096];
  size_t n;
  NAPI(napi_get_value_string_utf8(env, a.v[0], path, sizeof path, &n));
  int fd = open(path, O_RDONLY);
  if (fd < 0) throw Err{std::string("cannot open ") + path};
  struct stat st;
  fstat(fd, &st);
  size_t size = size_t(st.st_size);
  void* p = size ? mmap(nullptr, size, PROT_READ, MAP_PRIVATE | (lazy || huge ? 0 : MAP_POPULATE), fd, 0) : nullptr;
  close(fd);
  if (p == MAP_FAILED) throw Err{std::string("cannot map ") + path};
  if (huge) {
    map_huge_hint(p, size);
    if (!lazy) populate(p, size);
  }
  return mapping_buffer(env, p, size);
}

// allocWeights(bytes) → a zeroed ArrayBuffer of anonymous memory asking for transparent huge
// pages, for weights made at load time (int8 re-quantisation). Small pages from the JS heap's
// allocator, allocated while the page cache fills memory, were measured to slow down several-fold
// during long decodes (page migration by compaction); huge pages also cut TLB misses when
// streaming the weights.
napi_value AllocWeights(napi_env env, napi_callback_info info) {
  Args a(env, info, 1);
  const size_t size = size_t(num(env, a.v[0]));
  if (size == 0) throw Err{"allocWeights: size must be positive"};
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Err{std::string("allocWeights: cannot allocate ") + std::to_string(size) + " bytes"};
#ifdef MADV_HUGEPAGE
  madvise(p, size, MADV_HUGEPAGE);
#endif
  return mapping_buffer(env, p, size);
}

// The whole pages over [p, p + bytes): [b, e)
static void page_span(const void* p, size_t bytes, bool outer, uintptr_t& b, uintptr_t& e) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  b = outer ? uintptr_t(p) & ~(page - 1) : (uintptr_t(p) + page - 1) & ~(page - 1);
  e = outer ? (uintptr_t(p) + bytes + page - 1) & ~(page - 1) : (uintptr_t(p) + bytes) & ~(page - 1);
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

// The pages over [p, p + bytes) of a mapping faulted in now, as MAP_POPULATE does for a whole
// file (madvise POPULATE_READ, Linux 5.14; older kernels: one read per page on the pool's threads)
void populate(const void* p, size_t bytes) {
  uintptr_t b, e;
  page_span(p, bytes, true, b, e);
  if (e > b && madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_READ) != 0) {
    const int64_t page = int64_t(sysconf(_SC_PAGESIZE)), pages = int64_t((e - b) / uintptr_t(page));
    auto touch = [&](int64_t i) { reinterpret_cast<volatile const uint8_t*>(b)[i * page]; };
    if (pool) pool->parallel_for(pages, touch);
    else for (int64_t i = 0; i < pages; i++) touch(i);
  }
}

// populatePages(view): the pages under a typed array of a lazy mapping mapped in now
napi_value PopulatePages(napi_env env, napi_callback_info info) {
  Args a(env, info, 1);
  size_t n;
  const uint8_t* p = typed<uint8_t>(env, a.v[0], napi_uint8_array, &n, "view");
  if (n > 0) populate(p, n);
  return undefined(env);
}

// createMappedFile(path, bytes) → ArrayBuffer over a new file of `bytes` bytes (it must not
// exist), mapped shared and writable: what is written there goes to the file through the page
// cache (a prepared copy of weights, written once and mapped by later loads)
napi_value CreateMappedFile(napi_env env, napi_callback_info info) {
  Args a(env, info, 2);
  char path[4096];
  size_t n;
  NAPI(napi_get_value_string_utf8(env, a.v[0], path, sizeof path, &n));
  const size_t size = size_t(num(env, a.v[1]));
  if (size == 0) throw Err{"createMappedFile: size must be positive"};
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) throw Err{std::string("cannot create ") + path + ": " + std::strerror(errno)};
  // the file's blocks reserved (and its size set) now: a write into a sparse shared mapping on a
  // full disk would be SIGBUS, not an error
  const int fe = posix_fallocate(fd, 0, off_t(size));
  if (fe != 0) {
    close(fd);
    unlink(path);
    throw Err{std::string("cannot reserve ") + std::to_string(size) + " bytes for " + path + ": " + std::strerror(fe)};
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    unlink(path);
    throw Err{std::string("cannot map ") + path};
  }
  map_huge_hint(p, size);  // the page cache it writes is what later loads map
  return mapping_buffer(env, p, size);
}

// syncMapping(view) → whether the pages under a view of a shared mapping reached the disk (msync)
napi_value SyncMapping(napi_env env, napi_callback_info info) {
  Args a(env, info, 1);
  size_t n;
  const uint8_t* p = typed<uint8_t>(env, a.v[0], napi_uint8_array, &n, "view");
  uintptr_t b, e;
  page_span(p, n, true, b, e);
  napi_value r;
  NAPI(napi_get_boolean(env, n == 0 || msync(reinterpret_cast<void*>(b), e - b, MS_SYNC) == 0, &r));
  return r;
}

// madvise DONTNEED over the whole pages in [p, p + bytes): a private file mapping's pages leave
// the process (they stay in the page cache, and a later read faults them back in)
void drop_pages(const void* p, size_t bytes) {
  uintptr_t b, e;
  page_span(p, bytes, false, b, e);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

// requantizeInt8(src: Uint16Array (bf16) | Float32Array, rows, cols, data: Int8Array,
//                rowScale: Float32Array, release) — one absmax scale per row, the same arithmetic
// as requantizeInt8 in src/weights/qmatrix.ts (doubles; ties round up, as Math.round), so a
// checkpoint re-quantises to the same bytes with or without the addon. `release` drops the
// source's pages from this process (madvise DONTNEED: a mapped checkpoint's bf16 copy is then
// only in the page cache, not in our RSS; a later read faults it back in).
// ---- int8 re-quantisation at load (requantizeInt8's arithmetic, src/weights/qmatrix.ts) ----
// Math.round(x · inv) in double (ties toward +∞), taken on the magnitude without branches
// (random signs made a branchy version mispredict half the time) or libm: |v| ≤ 127, and the
// fraction m − ⌊m⌋ is exact.
static inline int8_t round_int8(float x, double inv) {
  const double v = double(x) * inv;
  const double m = std::fabs(v);
  const int32_t t = int32_t(m);
  const double f = m - double(t);
  const int32_t neg = int32_t(v < 0);
  const int32_t up = int32_t(f > 0.5) | (int32_t(f == 0.5) & (neg ^ 1));
  return int8_t((t + up) * (1 - 2 * neg));
}

// The same for 4 values, in double vectors.
__attribute__((target("avx2"))) static inline __m128i round_int8x4(const float* p, __m256d iv) {
  const __m256d half = _mm256_set1_pd(0.5), one = _mm256_set1_pd(1.0), sign = _mm256_set1_pd(-0.0);
  const __m256d v = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(p)), iv);
  const __m256d m = _mm256_andnot_pd(sign, v);
  const __m256d t = _mm256_round_pd(m, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m256d f = _mm256_sub_pd(m, t);
  const __m256d neg = _mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_LT_OQ);
  const __m256d up = _mm256_or_pd(_mm256_cmp_pd(f, half, _CMP_GT_OQ), _mm256_andnot_pd(neg, _mm256_cmp_pd(f, half, _CMP_EQ_OQ)));
  const __m256d q = _mm256_add_pd(t, _mm256_and_pd(up, one));
  return _mm256_cvttpd_epi32(_mm256_or_pd(q, _mm256_and_pd(neg, sign)));  // ± the magnitude
}

// 16 values a time; returns how many it did (a multiple of 16)
__attribute__((target("avx2"))) static int64_t round_int8_avx2(const float* x, int64_t n, double inv, int8_t* o) {
  const __m256d iv = _mm256_set1_pd(inv);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i a = _mm_packs_epi32(round_int8x4(x + i, iv), round_int8x4(x + i + 4, iv));
    const __m128i b = _mm_packs_epi32(round_int8x4(x + i + 8, iv), round_int8x4(x + i + 12, iv));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + i), _mm_packs_epi16(a, b));
  }
  return i;
}

// max |x| over the first values, 8 a time; returns how many it covered (a multiple of 8). The
// running max is the second operand of maxps, so a NaN value leaves it as std::max does.
__attribute__((target("avx2"))) static int64_t absmax_avx2(const float* x, int64_t n, float* amax) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 acc = _mm256_set1_ps(*amax);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), acc);
  alignas(32) float l[8];
  _mm256_store_ps(l, acc);
  for (int k = 0; k < 8; k++) *amax = std::max(*amax, l[k]);
  return i;
}

// octScales(scales: Uint8Array, rows, groups, out: Uint8Array): MXFP4 E8M0 scales [rows, groups]
// → Matrix::scales_oct's order (kernels.h), out ≥ ⌈rows/8⌉·8·groups bytes (a last set short of
// 8 rows padded with 0)
// usesOctScales() → whether the chosen kernels read the oct-ordered copy (KernelTable)
napi_value UsesOctScales(napi_env env, napi_callback_info) {
  need_init();
  napi_value r;
  NAPI(napi_get_boolean(env, K->q8_reads_scales_oct, &r));
  return r;
}

napi_value OctScales(napi_env env, napi_callback_info info) {
  Args a(env, info, 4);
  size_t ns, no;
  const uint8_t* sc = typed<uint8_t>(env, a.v[0], napi_uint8_array, &ns, "scales");
  const int64_t rows = int64_t(num(env, a.v[1])), G = int64_t(num(env, a.v[2]));
  uint8_t* out = typed<uint8_t>(env, a.v[3], napi_uint8_array, &no, "out");
  if (rows < 1 || G < 1) throw Err{"octScales: rows and groups must be positive"};
  const int64_t octs = (rows + 7) / 8;
  if (int64_t(ns) < rows * G || int64_t(no) < octs * 8 * G) throw Err{"octScales: arrays too short"};
  auto oct = [&](int64_t o) {
    uint8_t* d = out + o * 8 * G;
    const int64_t r0 = o * 8, n = std::min<int64_t>(8, rows - r0);
    int64_t b = 0;
    if (n == 8)
      for (; b + 8 <= G; b += 8) {  // an 8 × 8 byte transpose (SSE2) per 8 blocks
        auto ld = [&](int i) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc + (r0 + i) * G + b)); };
        const __m128i a01 = _mm_unpacklo_epi8(ld(0), ld(1)), a23 = _mm_unpacklo_epi8(ld(2), ld(3));
        const __m128i a45 = _mm_unpacklo_epi8(ld(4), ld(5)), a67 = _mm_unpacklo_epi8(ld(6), ld(7));
        const __m128i b0 = _mm_unpacklo_epi16(a01, a23), b1 = _mm_unpackhi_epi16(a01, a23);
        const __m128i b2 = _mm_unpacklo_epi16(a45, a67), b3 = _mm_unpackhi_epi16(a45, a67);
        __m128i* dst = reinterpret_cast<__m128i*>(d + 8 * b);
        _mm_storeu_si128(dst, _mm_unpacklo_epi32(b0, b2));
        _mm_storeu_si128(dst + 1, _mm_unpackhi_epi32(b0, b2));
        _mm_storeu_si128(dst + 2, _mm_unpacklo_epi32(b1, b3));
        _mm_storeu_si128(dst + 3, _mm_unpackhi_epi32(b1, b3));
      }
    for (; b < G; b++)
      for (int64_t i = 0; i < 8; i++) d[8 * b + i] = i < n ? sc[(r0 + i) * G + b] : 0;
  };
  if (pool) pool->parallel_for(octs, oct);
  else for (int64_t o = 0; o < octs; o++) oct(o);
  return undefined(env);
}

// packRows16(blocks, scales, rows, groups, outBlocks, outScales, release): MXFP4 blocks [rows,
// groups·16] and scales [rows, groups] → Matrix::rows16's order (kernels.h); rows a multiple of
// 16. `release` drops the sources' pages from this process afterwards (drop_pages), as the
// kernels that read the copy never read them.
// usesRows16() → whether the chosen kernels read it (KernelTable)
napi_value UsesRows16(napi_env env, napi_callback_info) {
  need_init();
  napi_value r;
  NAPI(napi_get_boolean(env, K->q8_reads_rows16, &r));
  return r;
}

napi_value PackRows16(napi_env env, napi_callback_info info) {
  Args a(env, info, 7);
  size_t nb, ns, nob, nos;
  const uint8_t* blocks = typed<uint8_t>(env, a.v[0], napi_uint8_array, &nb, "blocks");
  const uint8_t* sc = typed<uint8_t>(env, a.v[1], napi_uint8_array, &ns, "scales");
  const int64_t rows = int64_t(num(env, a.v[2])), G = int64_t(num(env, a.v[3]));
  uint8_t* ob = typed<uint8_t>(env, a.v[4], napi_uint8_array, &nob, "outBlocks");
  uint8_t* os = typed<uint8_t>(env, a.v[5], napi_uint8_array, &nos, "outScales");
  if (rows < 16 || rows % 16 || G < 1) throw Err{"packRows16: rows must be a positive multiple of 16, groups positive"};
  if (int64_t(nb) < rows * G * 16 || int64_t(ns) < rows * G || int64_t(nob) < rows * G * 16 || int64_t(nos) < rows * G)
    throw Err{"packRows16: arrays too short"};
  auto set = [&](int64_t s) { mxfp4_rows16_pack(blocks + s * 16 * G * 16, sc + s * 16 * G, G, ob + s * 16 * G * 16, os + s * 16 * G, true); };
  if (pool) pool->parallel_for(rows / 16, set);
  else for (int64_t s = 0; s < rows / 16; s++) set(s);
  if (flag(env, a.v[6])) {
    drop_pages(blocks, size_t(rows * G * 16));
    drop_pages(sc, size_t(rows * G));
  }
  return undefined(env);
}

// packInt8Rows16(data: Int8Array, rows, cols): int8 weights [rows, cols] rearranged in place into
// Matrix::int8_rows16's order (rows a multiple of 16, cols of 32), one set of 16 rows at a time
// through a scratch copy
napi_value PackInt8Rows16(napi_env env, napi_callback_info info) {
  Args a(env, info, 3);
  size_t n;
  int8_t* data = typed<int8_t>(env, a.v[0], napi_int8_array, &n, "data");
  const int64_t rows = int64_t(num(env, a.v[1])), C = int64_t(num(env, a.v[2]));
  if (rows < 16 || rows % 16 || C < 32 || C % 32) throw Err{"packInt8Rows16: rows must be a positive multiple of 16, cols of 32"};
  if (int64_t(n) < rows * C) throw Err{"packInt8Rows16: data too short"};
  auto set = [&](int64_t s) {
    thread_local std::vector<int8_t> tmp;
    tmp.resize(size_t(16 * C));
    std::memcpy(tmp.data(), data + s * 16 * C, size_t(16 * C));
    int8_rows16_pack(tmp.data(), C, data + s * 16 * C);
  };
  if (pool) pool->parallel_for(rows / 16, set);
  else for (int64_t s = 0; s < rows / 16; s++) set(s);
  return undefined(env);
}

napi_value RequantizeInt8(napi_env env, napi_callback_info info) {
  Args a(env, info, 6);
  napi_typedarray_type type;
  size_t n;
  void* src;
  bool ok = false;
  NAPI(napi_is_typedarray(env, a.v[0], &ok));
  if (!ok) throw Err{"requantizeInt8: src must be a typed array"};
  NAPI(napi_get_typedarray_info(env, a.v[0], &type, &n, &src, nullptr, nullptr));
  if (type != napi_uint16_array && type != napi_float32_array) throw Err{"requantizeInt8: src must be bf16 (Uint16Array) or Float32Array"};
  const int64_t rows = int64_t(num(env, a.v[1])), cols = int64_t(num(env, a.v[2]));
  size_t nd, ns;
  int8_t* data = typed<int8_t>(env, a.v[3], napi_int8_array, &nd, "data");
  float* rowScale = typed<float>(env, a.v[4], napi_float32_array, &ns, "rowScale");
  if (int64_t(n) < rows * cols || int64_t(nd) < rows * cols || int64_t(ns) < rows) throw Err{"requantizeInt8: arrays too short"};
  const bool bf16 = type == napi_uint16_array;
  const int64_t chunk = 64;
  const bool avx2 = __builtin_cpu_supports("avx2");
  auto rowsOf = [&](int64_t c) {
    std::vector<float> row(cols);
    for (int64_t r = c * chunk; r < std::min(rows, (c + 1) * chunk); r++) {
      if (bf16) {
        const uint16_t* s = static_cast<const uint16_t*>(src) + r * cols;
        for (int64_t i = 0; i < cols; i++) {
          uint32_t u = uint32_t(s[i]) << 16;
          std::memcpy(&row[i], &u, 4);
        }
      } else {
        std::memcpy(row.data(), static_cast<const float*>(src) + r * cols, cols * 4);
      }
      float amax = 0;
      int64_t i0 = 0;
      if (avx2) i0 = absmax_avx2(row.data(), cols, &amax);
      for (int64_t i = i0; i < cols; i++) amax = std::max(amax, std::fabs(row[i]));
      const double scale = double(amax) / 127;
      rowScale[r] = float(scale);
      const double inv = scale > 0 ? 1 / scale : 0;
      int8_t* o = data + r * cols;
      i0 = avx2 ? round_int8_avx2(row.data(), cols, inv, o) : 0;
      for (int64_t i = i0; i < cols; i++) o[i] = round_int8(row[i], inv);
    }
  };
  const int64_t chunks = (rows + chunk - 1) / chunk;
  if (pool) pool->parallel_for(chunks, rowsOf);  // loading may precede the backend's init
  else for (int64_t c = 0; c < chunks; c++) rowsOf(c);
  if (flag(env, a.v[5])) drop_pages(src, n * (bf16 ? 2 : 4));
  return undefined(env);
}

// Every byte of [p, p + n) read (n a multiple of 256), folded into a word so the reads stay.
// 256-bit loads where the CPU has them: 8-byte scalar loads read 21-23 GB/s where these read
// 26-32 (2 threads, Zen 3, alternated in one process), and a probe below the machine's real
// bandwidth overstates the roofline fraction.
__attribute__((target("avx2"))) static uint64_t read_all_avx2(const uint8_t* p, int64_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < n; i += 256) {
    a0 = _mm256_add_epi64(a0, _mm256_xor_si256(_mm256_load_si256((const __m256i*)(p + i)), _mm256_load_si256((const __m256i*)(p + i + 32))));
    a1 = _mm256_add_epi64(a1, _mm256_xor_si256(_mm256_load_si256((const __m256i*)(p + i + 64)), _mm256_load_si256((const __m256i*)(p + i + 96))));
    a2 = _mm256_add_epi64(a2, _mm256_xor_si256(_mm256_load_si256((const __m256i*)(p + i + 128)), _mm256_load_si256((const __m256i*)(p + i + 160))));
    a3 = _mm256_add_epi64(a3, _mm256_xor_si256(_mm256_load_si256((const __m256i*)(p + i + 192)), _mm256_load_si256((const __m256i*)(p + i + 224))));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  return uint64_t(_mm256_extract_epi64(s, 0) + _mm256_extract_epi64(s, 3));
}
static uint64_t read_all_scalar(const uint8_t* p, int64_t n) {
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
  for (int64_t i = 0; i + 4 <= n / 8; i += 4) {
    acc0 += q[i];
    acc1 ^= q[i + 1];
    acc2 += q[i + 2];
    acc3 ^= q[i + 3];
  }
  return acc0 + acc1 + acc2 + acc3;
}

// argmax(x, offset, n) → the index (from offset) of the largest of x[offset, offset + n): the
// first of equal ones, NaN never chosen, 0 where none is above −∞ (src/util/argmax.ts's rule).
// Greedy decoding reads a whole vocabulary's logits per token: gpt-oss's 201088 took 150 µs in
// JS (a decode step on Zen 5 is 32 ms), 13.5 µs here. Two passes: the maximum, then its first index.
__attribute__((target("avx2"))) static int64_t argmax_avx2(const float* x, int64_t n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  // max(v, m) gives m where v is NaN
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + i), m);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float best = -INFINITY;
  for (float v : lanes) best = v > best ? v : best;
  for (int64_t j = i; j < n; j++) best = x[j] > best ? x[j] : best;
  if (best == -INFINITY) return 0;
  const __m256 b = _mm256_set1_ps(best);
  for (i = 0; i + 8 <= n; i += 8) {
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), b, _CMP_EQ_OQ));
    if (mask) return i + __builtin_ctz(unsigned(mask));
  }
  for (; i < n; i++)
    if (x[i] == best) return i;
  return 0;
}
static int64_t argmax_scalar(const float* x, int64_t n) {
  int64_t best = 0;
  float bv = -INFINITY;
  for (int64_t i = 0; i < n; i++)
    if (x[i] > bv) {
      bv = x[i];
      best = i;
    }
  return best;
}
napi_value Argmax(napi_env env, napi_callback_info info) {
  Args a(env, info, 3);
  size_t len;
  const float* x = typed<float>(env, a.v[0], napi_float32_array, &len, "x");
  const double off = num(env, a.v[1]), n = num(env, a.v[2]);
  if (!(off >= 0 && n >= 0 && off + n <= double(len)) || off != std::floor(off) || n != std::floor(n))
    throw Err{"argmax: offset and n must be whole and within x"};
  static const bool avx2 = __builtin_cpu_supports("avx2");
  // subnormal logits compared as they are (wrap() flushes them for the kernels)
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(csr & ~0x8040u);
  const int64_t r = avx2 ? argmax_avx2(x + int64_t(off), int64_t(n)) : argmax_scalar(x + int64_t(off), int64_t(n));
  _mm_setcsr(csr);
  napi_value v;
  NAPI(napi_create_int64(env, r, &v));
  return v;
}

// readBandwidth(buf, reps) → bytes/s of parallel sequential reads over buf (the decode roofline)
napi_value ReadBandwidth(napi_env env, napi_callback_info info) {
  need_init();
  Args a(env, info, 2);
  size_t n;
  const uint8_t* p = typed<uint8_t>(env, a.v[0], napi_uint8_array, &n, "buf");
  int reps = int(num(env, a.v[1]));
  const int64_t chunks = pool->size() * 16;
  // chunks start on 32-byte boundaries: the buffer's own alignment decides where the first does
  const int64_t lead = int64_t((32 - (reinterpret_cast<uintptr_t>(p) & 31)) & 31);
  const int64_t per = (int64_t(n) - lead) / chunks / 256 * 256;
  const bool vec = __builtin_cpu_supports("avx2");
  std::vector<uint64_t> sink(chunks);
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; r++) {
    pool->parallel_for(chunks, [&](int64_t c) {
      const uint8_t* q = p + lead + c * per;
      sink[c] += vec ? read_all_avx2(q, per) : read_all_scalar(q, per);
    });
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  napi_value r;
  NAPI(napi_create_double(env, double(per) * chunks * reps / s + double(sink[0] & 1) * 1e-300, &r));
  return r;
}

// The packed batch's sequences for the Mamba ops: starts, lens, slots (Int32Array), fresh (Uint8Array).
std::vector<MambaSeg> mamba_segs(napi_env env, const Args& a, size_t i0, int64_t T, int64_t nslots) {
  size_t n, n2, n3, n4;
  const int32_t* st = typed<int32_t>(env, a.v[i0], napi_int32_array, &n, "starts");
  const int32_t* ln = typed<int32_t>(env, a.v[i0 + 1], napi_int32_array, &n2, "lens");
  const int32_t* sl = typed<int32_t>(env, a.v[i0 + 2], napi_int32_array, &n3, "slots");
  const uint8_t* fr = typed<uint8_t>(env, a.v[i0 + 3], napi_uint8_array, &n4, "fresh");
  if (n2 != n || n3 != n || n4 != n) throw Err{"mamba: per-sequence arrays differ in length"};
  std::vector<MambaSeg> segs(n);
  for (size_t i = 0; i < n; i++) {
    if (st[i] < 0 || ln[i] < 0 || st[i] + int64_t(ln[i]) > T) throw Err{"mamba: sequence outside the batch"};
    if (sl[i] < 0 || sl[i] >= nslots) throw Err{"mamba: state slot out of range"};
    segs[i] = {st[i], ln[i], sl[i], fr[i] != 0};
  }
  return segs;
}

// mambaConv(x, T, Cd, K, w, bias|null, state, starts, lens, slots, fresh, out)
napi_value MambaConv(napi_env env, napi_callback_info info) {
  need_init();
  Args a(env, info, 12);
  size_t nx, nw, ns, no, nb = 0;
  const float* x = typed<float>(env, a.v[0], napi_float32_array, &nx, "x");
  int64_t T = int64_t(num(env, a.v[1])), Cd = int64_t(num(env, a.v[2])), K = int64_t(num(env, a.v[3]));
  const float* w = typed<float>(env, a.v[4], napi_float32_array, &nw, "weight");
  const float* b = is_null(env, a.v[5]) ? nullptr : typed<float>(env, a.v[5], napi_float32_array, &nb, "bias");
  float* st = typed<float>(env, a.v[6], napi_float32_array, &ns, "state");
  float* out = typed<float>(env, a.v[11], napi_float32_array, &no, "out");
  if (K < 1 || int64_t(nx) < T * Cd || int64_t(no) < T * Cd || int64_t(nw) < Cd * K || (b && int64_t(nb) < Cd))
    throw Err{"mambaConv: array sizes do not match"};
  const int64_t per = (K - 1) * Cd;
  auto segs = mamba_segs(env, a, 7, T, per > 0 ? int64_t(ns) / per : (1LL << 40));
  mamba_conv1d(*pool, x, Cd, K, w, b, st, segs.data(), int64_t(segs.size()), out);
  return undefined(env);
}

// ssmScan(x, dt, B, C, T, A, D, dtBias, state, starts, lens, slots, fresh, nh, P, G, N, chunk, dtMin, dtMax, y)
napi_value SsmScan(napi_env env, napi_callback_info info) {
  need_init();
  Args a(env, info, 21);
  size_t nx, ndt, nB, nC, nA, nD, nbias, ns, ny;
  const float* x = typed<float>(env, a.v[0], napi_float32_array, &nx, "x");
  const float* dt = typed<float>(env, a.v[1], napi_float32_array, &ndt, "dt");
  const float* B = typed<float>(env, a.v[2], napi_float32_array, &nB, "B");
  const float* C = typed<float>(env, a.v[3], napi_float32_array, &nC, "C");
  int64_t T = int64_t(num(env, a.v[4]));
  const float* A = typed<float>(env, a.v[5], napi_float32_array, &nA, "A");
  const float* D = typed<float>(env, a.v[6], napi_float32_array, &nD, "D");
  const float* db = typed<float>(env, a.v[7], napi_float32_array, &nbias, "dtBias");
  float* st = typed<float>(env, a.v[8], napi_float32_array, &ns, "state");
  int64_t nh = int64_t(num(env, a.v[13])), P = int64_t(num(env, a.v[14])), G = int64_t(num(env, a.v[15]));
  int64_t N = int64_t(num(env, a.v[16])), chunk = int64_t(num(env, a.v[17]));
  float dtMin = float(num(env, a.v[18])), dtMax = float(num(env, a.v[19]));
  float* y = typed<float>(env, a.v[20], napi_float32_array, &ny, "y");
  if (nh < 1 || G < 1 || nh % G || P < 1 || N < 1) throw Err{"ssmScan: bad head/group sizes"};
  if (int64_t(nx) < T * nh * P || int64_t(ny) < T * nh * P || int64_t(ndt) < T * nh || int64_t(nB) < T * G * N ||
      int64_t(nC) < T * G * N || int64_t(nA) < nh || int64_t(nD) < nh || int64_t(nbias) < nh)
    throw Err{"ssmScan: array sizes do not match"};
  auto segs = mamba_segs(env, a, 9, T, int64_t(ns) / (nh * P * N));
  mamba_ssm_scan(*pool, x, dt, B, C, A, D, db, st, segs.data(), int64_t(segs.size()), T, nh, P, G, N, chunk, dtMin,
                 dtMax, y);
  return undefined(env);
}

// gatedRmsNorm(y, z, T, weight, groupSize, eps, out)
napi_value GatedRmsNorm(napi_env env, napi_callback_info info) {
  need_init();
  Args a(env, info, 7);
  size_t ny, nz, nw, no;
  const float* y = typed<float>(env, a.v[0], napi_float32_array, &ny, "y");
  const float* z = typed<float>(env, a.v[1], napi_float32_array, &nz, "z");
  const int64_t T = int64_t(num(env, a.v[2]));
  const float* w = typed<float>(env, a.v[3], napi_float32_array, &nw, "weight");
  const int64_t gs = int64_t(num(env, a.v[4]));
  const double eps = num(env, a.v[5]);
  float* out = typed<float>(env, a.v[6], napi_float32_array, &no, "out");
  const int64_t W = int64_t(nw);
  if (gs < 1 || W % gs) throw Err{"gatedRmsNorm: the group size must divide the width"};
  if (int64_t(ny) < T * W || int64_t(nz) < T * W || int64_t(no) < T * W) throw Err{"gatedRmsNorm: array sizes do not match"};
  mamba_gated_rmsnorm(*pool, y, z, T, W, w, gs, eps, out);
  return undefined(env);
}

#define EXPORT(name, fn)                                                                        \
  {                                                                                             \
    napi_value f;                                                                               \
    napi_create_function(env, name, NAPI_AUTO_LENGTH,                                           \
                         [](napi_env e, napi_callback_info i) { return wrap(e, i, fn); }, nullptr, &f); \
    napi_set_named_property(env, exports, name, f);                                             \
  }

napi_value ModuleInit(napi_env env, napi_value exports) {
  EXPORT("init", Init);
  EXPORT("linear", Linear);
  EXPORT("linearMany", LinearMany);
  EXPORT("rmsNorm", RmsNorm);
  EXPORT("addInPlace", AddInPlace);
  EXPORT("rope", Rope);
  EXPORT("attention", Attention);
  EXPORT("moe", Moe);
  EXPORT("mapFile", MapFile);
  EXPORT("populatePages", PopulatePages);
  EXPORT("createMappedFile", CreateMappedFile);
  EXPORT("syncMapping", SyncMapping);
  EXPORT("readBandwidth", ReadBandwidth);
  EXPORT("argmax", Argmax);
  EXPORT("allocWeights", AllocWeights);
  EXPORT("requantizeInt8", RequantizeInt8);
  EXPORT("octScales", OctScales);
  EXPORT("usesOctScales", UsesOctScales);
  EXPORT("packRows16", PackRows16);
  EXPORT("usesRows16", UsesRows16);
  EXPORT("packInt8Rows16", PackInt8Rows16);
  EXPORT("mambaConv", MambaConv);
  EXPORT("gatedRmsNorm", GatedRmsNorm);
  EXPORT("ssmScan", SsmScan);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, ModuleInit)
