// Mamba-2 kernels; see mamba.h. Work is split over (sequence, B/C group): each task owns its
// heads' states, so tasks never share memory.
#include "mamba.h"
#include <cmath>
#include <cstring>
#include <vector>

namespace tessera {

namespace {
inline float silu(float v) { return v / (1.f + std::exp(-v)); }
inline double softplus(double v) { return v > 20 ? v : std::log1p(std::exp(v)); }

// The scan's inner loops over the state size N (and head size P), in f64 as the reference.
// Reductions keep 4 partial sums (k mod 4, added at the end) so that every build vectorises them
// the same way and gives the same bits. They are inlined into the scan's task, which is built
// twice (AVX2 and baseline clones, picked at load): calling a cloned helper per state row cost
// an indirect call per 64–128 values.
#define MAMBA_CLONES __attribute__((target_clones("avx2", "default")))
#define MAMBA_INLINE static inline __attribute__((always_inline))

// Σ a[k]·b[k]
MAMBA_INLINE double dot_ff(const float* a, const float* b, int64_t n) {
  double s[4] = {0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 4 <= n; k += 4)
    for (int j = 0; j < 4; j++) s[j] += double(a[k + j]) * b[k + j];
  for (; k < n; k++) s[0] += double(a[k]) * b[k];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// y[k] += w · x[k]
MAMBA_INLINE void axpy_df(double* y, double w, const float* x, int64_t n) {
  for (int64_t k = 0; k < n; k++) y[k] += w * x[k];
}

// y[k] += a0·b0[k], then a1·b1[k], a2·b2[k], a3·b3[k]: four axpy_df in one pass over y
MAMBA_INLINE void axpy4_df(double* y, double a0, const float* b0, double a1, const float* b1, double a2, const float* b2,
                           double a3, const float* b3, int64_t n) {
  for (int64_t k = 0; k < n; k++) y[k] = (((y[k] + a0 * b0[k]) + a1 * b1[k]) + a2 * b2[k]) + a3 * b3[k];
}

// one recurrent step of a state row: s[k] = f32(s[k]·dA + dx·b[k]); returns Σ s[k]·c[k]
MAMBA_INLINE double step_row(float* s, const float* b, const float* c, double dA, double dx, int64_t n) {
  double acc[4] = {0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 4 <= n; k += 4)
    for (int j = 0; j < 4; j++) {
      const float v = float(s[k + j] * dA + dx * b[k + j]);
      s[k + j] = v;
      acc[j] += double(v) * c[k + j];
    }
  for (; k < n; k++) {
    const float v = float(s[k] * dA + dx * b[k]);
    s[k] = v;
    acc[0] += double(v) * c[k];
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}
}  // namespace

void mamba_gated_rmsnorm(ThreadPool& pool, const float* y, const float* z, int64_t T, int64_t W, const float* weight,
                         int64_t gs, double eps, float* out) {
  auto token = [&](int64_t t) {
    thread_local std::vector<float> u;
    u.resize(size_t(W));
    const float* yt = y + t * W;
    const float* zt = z + t * W;
    float* o = out + t * W;
    for (int64_t i = 0; i < W; i++) {
      const double zv = zt[i];
      u[i] = float(double(yt[i]) * (zv / (1 + std::exp(-zv))));
    }
    for (int64_t g0 = 0; g0 < W; g0 += gs) {
      double ss = 0;
      for (int64_t i = g0; i < g0 + gs; i++) ss += double(u[i]) * u[i];
      const double inv = 1 / std::sqrt(double(float(ss / double(gs))) + eps);
      for (int64_t i = g0; i < g0 + gs; i++) o[i] = float(double(float(double(u[i]) * inv)) * weight[i]);
    }
  };
  if (T >= 4) pool.parallel_for(T, token);
  else
    for (int64_t t = 0; t < T; t++) token(t);
}

void mamba_conv1d(ThreadPool& pool, const float* x, int64_t Cd, int64_t K, const float* w, const float* bias,
                  float* conv_state, const MambaSeg* segs, int64_t nseg, float* out) {
  const int64_t W = K - 1;
  const int64_t CB = 256;  // channels per task
  const int64_t nb = (Cd + CB - 1) / CB;
  pool.parallel_for(nseg * nb, [&](int64_t task) {
    const MambaSeg& s = segs[task / nb];
    if (s.len == 0) return;
    const int64_t c0 = (task % nb) * CB, c1 = std::min(Cd, c0 + CB);
    float* st = conv_state + s.slot * W * Cd;
    // column j of the window: j < W from the state (zeros when fresh), else token j − W
    auto col = [&](int64_t j, int64_t ch) -> float {
      if (j < W) return s.fresh ? 0.f : st[j * Cd + ch];
      return x[(s.start + j - W) * Cd + ch];
    };
    for (int64_t j = 0; j < s.len; j++) {
      float* o = out + (s.start + j) * Cd;
      for (int64_t ch = c0; ch < c1; ch++) {
        double acc = bias ? bias[ch] : 0.0;
        for (int64_t k = 0; k < K; k++) acc += double(w[ch * K + k]) * col(j + k, ch);
        o[ch] = silu(float(acc));
      }
    }
    // new window: the last W columns of (state ++ tokens); read before overwriting
    std::vector<float> nw(W * (c1 - c0));
    for (int64_t j = 0; j < W; j++)
      for (int64_t ch = c0; ch < c1; ch++) nw[j * (c1 - c0) + ch - c0] = col(s.len + j, ch);
    for (int64_t j = 0; j < W; j++)
      for (int64_t ch = c0; ch < c1; ch++) st[j * Cd + ch] = nw[j * (c1 - c0) + ch - c0];
  });
}

namespace {
struct ScanArgs {
  const float *x, *dt, *B, *C, *A, *D, *dt_bias;
  float* ssm_state;
  const MambaSeg* segs;
  int64_t nh, P, G, N, L;
  float dt_min, dt_max;
  float* y;
};

// one (sequence, group) task of the scan: the group's heads, recurrent step or chunked SSD
MAMBA_CLONES void scan_task(const ScanArgs& a, int64_t task) {
  const float *x = a.x, *dt = a.dt, *B = a.B, *C = a.C, *A = a.A, *D = a.D, *dt_bias = a.dt_bias;
  const int64_t nh = a.nh, P = a.P, G = a.G, N = a.N, L = a.L, hpg = nh / G, GN = G * N;
  const float dt_min = a.dt_min, dt_max = a.dt_max;
  float* ssm_state = a.ssm_state;
  float* y = a.y;
  const MambaSeg* segs = a.segs;
  const MambaSeg& s = segs[task / G];
  const int64_t grp = task % G;
  if (s.len == 0) return;
  float* S0 = ssm_state + s.slot * nh * P * N;
  if (s.fresh) std::memset(S0 + grp * hpg * P * N, 0, sizeof(float) * hpg * P * N);
  auto delta = [&](int64_t t, int64_t h) {
    double d = softplus(double(float(dt[t * nh + h] + dt_bias[h])));
    if (d < dt_min) d = dt_min;
    if (d > dt_max) d = dt_max;
    return float(d);
  };
  if (s.len == 1) {  // recurrent step
    const int64_t t = s.start;
    const float* b = B + t * GN + grp * N;
    const float* c = C + t * GN + grp * N;
    for (int64_t h = grp * hpg; h < (grp + 1) * hpg; h++) {
      const double d = delta(t, h);
      const double dA = std::exp(d * A[h]);
      float* S = S0 + h * P * N;
      for (int64_t p = 0; p < P; p++) {
        const double xv = x[(t * nh + h) * P + p];
        const double dx = d * xv;
        const double acc = step_row(S + p * N, b, c, dA, dx, N);
        y[(t * nh + h) * P + p] = float(acc + double(D[h]) * xv);
      }
    }
    return;
  }
  // chunked SSD
  std::vector<double> cb(L * L), cs(L), dl(L), yrow(P), sc(P * N);
  for (int64_t c0 = 0; c0 < s.len; c0 += L) {
    const int64_t len = std::min(L, s.len - c0), tb = s.start + c0;
    for (int64_t j = 0; j < len; j++) {
      const float* cj = C + (tb + j) * GN + grp * N;
      for (int64_t i = 0; i <= j; i++) {
        cb[j * L + i] = dot_ff(cj, B + (tb + i) * GN + grp * N, N);
      }
    }
    for (int64_t h = grp * hpg; h < (grp + 1) * hpg; h++) {
      double run = 0;
      for (int64_t j = 0; j < len; j++) {
        dl[j] = delta(tb + j, h);
        run += dl[j] * A[h];
        cs[j] = run;
      }
      float* S = S0 + h * P * N;
      for (int64_t j = 0; j < len; j++) {
        const int64_t t = tb + j;
        const float* cj = C + t * GN + grp * N;
        const double decay0 = std::exp(cs[j]);
        for (int64_t p = 0; p < P; p++) yrow[p] = dot_ff(S + p * N, cj, N) * decay0;
        for (int64_t i = 0; i <= j; i++) {
          const double w = std::exp(cs[j] - cs[i]) * cb[j * L + i] * dl[i];
          axpy_df(yrow.data(), w, x + ((tb + i) * nh + h) * P, P);
        }
        const float* xt = x + (t * nh + h) * P;
        float* yt = y + (t * nh + h) * P;
        for (int64_t p = 0; p < P; p++) yt[p] = float(yrow[p] + double(D[h]) * xt[p]);
      }
      const double end = cs[len - 1], dEnd = std::exp(end);
      for (int64_t i = 0; i < P * N; i++) sc[i] = S[i] * dEnd;
      // the chunk's tokens 4 at a time: each state row (N doubles; all P of them overflow L1)
      // is read and written once per 4 tokens, its adds still in token order
      int64_t i = 0;
      for (; i + 4 <= len; i += 4) {
        double w[4];
        const float *bi[4], *xi[4];
        for (int m = 0; m < 4; m++) {
          w[m] = std::exp(end - cs[i + m]) * dl[i + m];
          bi[m] = B + (tb + i + m) * GN + grp * N;
          xi[m] = x + ((tb + i + m) * nh + h) * P;
        }
        for (int64_t p = 0; p < P; p++)
          axpy4_df(sc.data() + p * N, w[0] * xi[0][p], bi[0], w[1] * xi[1][p], bi[1], w[2] * xi[2][p], bi[2], w[3] * xi[3][p], bi[3], N);
      }
      for (; i < len; i++) {
        const double w = std::exp(end - cs[i]) * dl[i];
        const float* bi = B + (tb + i) * GN + grp * N;
        const float* xi = x + ((tb + i) * nh + h) * P;
        for (int64_t p = 0; p < P; p++) axpy_df(sc.data() + p * N, w * xi[p], bi, N);
      }
      for (int64_t i = 0; i < P * N; i++) S[i] = float(sc[i]);
    }
  }
}
}  // namespace

void mamba_ssm_scan(ThreadPool& pool, const float* x, const float* dt, const float* B, const float* C, const float* A,
                    const float* D, const float* dt_bias, float* ssm_state, const MambaSeg* segs, int64_t nseg,
                    int64_t T, int64_t nh, int64_t P, int64_t G, int64_t N, int64_t chunk, float dt_min, float dt_max,
                    float* y) {
  (void)T;
  const ScanArgs args{x, dt, B, C, A, D, dt_bias, ssm_state, segs, nh, P, G, N, chunk > 0 ? chunk : 1, dt_min, dt_max, y};
  pool.parallel_for(nseg * G, [&](int64_t task) { scan_task(args, task); });
}
}  // namespace tessera
