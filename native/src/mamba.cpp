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
}  // namespace

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

void mamba_ssm_scan(ThreadPool& pool, const float* x, const float* dt, const float* B, const float* C, const float* A,
                    const float* D, const float* dt_bias, float* ssm_state, const MambaSeg* segs, int64_t nseg,
                    int64_t T, int64_t nh, int64_t P, int64_t G, int64_t N, int64_t chunk, float dt_min, float dt_max,
                    float* y) {
  (void)T;
  const int64_t hpg = nh / G, GN = G * N;
  const int64_t L = chunk > 0 ? chunk : 1;
  pool.parallel_for(nseg * G, [&](int64_t task) {
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
          float* sp = S + p * N;
          double acc = 0;
          for (int64_t k = 0; k < N; k++) {
            float v = float(sp[k] * dA + dx * b[k]);
            sp[k] = v;
            acc += double(v) * c[k];
          }
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
          const float* bi = B + (tb + i) * GN + grp * N;
          double acc = 0;
          for (int64_t k = 0; k < N; k++) acc += double(cj[k]) * bi[k];
          cb[j * L + i] = acc;
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
          for (int64_t p = 0; p < P; p++) {
            const float* sp = S + p * N;
            double acc = 0;
            for (int64_t k = 0; k < N; k++) acc += double(sp[k]) * cj[k];
            yrow[p] = acc * decay0;
          }
          for (int64_t i = 0; i <= j; i++) {
            const double w = std::exp(cs[j] - cs[i]) * cb[j * L + i] * dl[i];
            const float* xi = x + ((tb + i) * nh + h) * P;
            for (int64_t p = 0; p < P; p++) yrow[p] += w * xi[p];
          }
          const float* xt = x + (t * nh + h) * P;
          float* yt = y + (t * nh + h) * P;
          for (int64_t p = 0; p < P; p++) yt[p] = float(yrow[p] + double(D[h]) * xt[p]);
        }
        const double end = cs[len - 1], dEnd = std::exp(end);
        for (int64_t i = 0; i < P * N; i++) sc[i] = S[i] * dEnd;
        for (int64_t i = 0; i < len; i++) {
          const double w = std::exp(end - cs[i]) * dl[i];
          const float* bi = B + (tb + i) * GN + grp * N;
          const float* xi = x + ((tb + i) * nh + h) * P;
          for (int64_t p = 0; p < P; p++) {
            const double wx = w * xi[p];
            double* row = sc.data() + p * N;
            for (int64_t k = 0; k < N; k++) row[k] += wx * bi[k];
          }
        }
        for (int64_t i = 0; i < P * N; i++) S[i] = float(sc[i]);
      }
    }
  });
}

}  // namespace tessera
