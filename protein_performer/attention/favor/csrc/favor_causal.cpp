// Causal FAVOR+ (softmax and ReLU kernels) on CPU: the chunk loop of favor/causal.py, one
// head per task (at::parallel_for over B*H), on cache-resident [C, m] tiles, GEMMs through
// BLAS (single-threaded inside the parallel region) and the stabiliser, exp2, ratio and
// masks fused into a few passes per tile. Same arithmetic and the same saved tensors as the
// Python loop (see its docstring for the notation), which stays the reference and fallback.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
            const float*, const int*, const float*, const int*, const float*, float*, const int*);
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
            const double*, const int*, const double*, const int*, const double*, double*,
            const int*);
}

namespace {

// C = alpha op(A) op(B) + beta C, all row-major; op(A) is [M, K], op(B) [K, N].
template <typename T>
void gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb,
          T beta, T* C, int ldc) {
  if (M == 0 || N == 0) return;
  const char a = ta ? 'T' : 'N', b = tb ? 'T' : 'N';
  if constexpr (std::is_same_v<T, float>) {
    sgemm_(&b, &a, &N, &M, &K, &alpha, B, &ldb, A, &lda, &beta, C, &ldc);
  } else {
    dgemm_(&b, &a, &N, &M, &K, &alpha, B, &ldb, A, &lda, &beta, C, &ldc);
  }
}

// 2^x for x <= 127 (x < -126, -inf included, gives 0). float: a degree-7 polynomial on the
// fraction (~2 ulp, vectorised by the compiler); double: std::exp2 (the float64 path is for
// tests).
#pragma omp declare simd
inline float fast_exp2(float x) {
  float xc = std::min(std::max(x, -126.0f), 127.0f);
  float fi = std::nearbyint(xc);
  float f = xc - fi;  // [-0.5, 0.5]
  float p = 1.5252734e-05f;
  p = p * f + 1.5403530e-04f;
  p = p * f + 1.3333558e-03f;
  p = p * f + 9.6181291e-03f;
  p = p * f + 5.5504109e-02f;
  p = p * f + 2.4022651e-01f;
  p = p * f + 6.9314718e-01f;
  p = p * f + 1.0f;
  int32_t bits = (static_cast<int32_t>(fi) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -126.0f ? 0.0f : p * scale;
}
#pragma omp declare simd
inline double fast_exp2(double x) { return std::exp2(x); }

// Softmax query features of one row, in place: 2^(p - max p) + add (exactly 1 + add at the
// maximum); returns their sum.
template <typename T>
T softmax_row(T* p, int64_t m, T add) {
  T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < m; ++j) mx = std::max(mx, p[j]);
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = 0; j < m; ++j) {
    p[j] = fast_exp2(p[j] - mx) + add;
    acc += p[j];
  }
  return acc;
}

inline bool is_real(const bool* mb, int64_t row) { return mb == nullptr || mb[row]; }

// ReLU features of a chunk, in place: queries relu(p) (+ eps when q_eps), keys relu(l) + eps,
// zero on padded keys.
template <typename T>
void relu_features(T* p, T* gr, const bool* mb, int64_t s, int64_t n, int64_t m, T eps, bool q_eps) {
  const T qe = q_eps ? eps : T(0);
  for (int64_t i = 0; i < n; ++i) {
    const T mk = is_real(mb, s + i) ? T(1) : T(0);
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) {
      p[i * m + j] = std::max(p[i * m + j], T(0)) + qe;
      gr[i * m + j] = (std::max(gr[i * m + j], T(0)) + eps) * mk;
    }
  }
}

// [v, 1] rows of a chunk [n, Dv+1], zero on padded keys.
template <typename T>
void fill_v1(T* v1, const T* vb, const bool* mb, int64_t s, int64_t n, int64_t dv) {
  for (int64_t i = 0; i < n; ++i) {
    const T mk = is_real(mb, s + i) ? T(1) : T(0);
    for (int64_t j = 0; j < dv; ++j) v1[i * (dv + 1) + j] = vb[(s + i) * dv + j] * mk;
    v1[i * (dv + 1) + dv] = mk;
  }
}

template <typename T>
struct Args {
  int64_t bh, length, d, dv, m, chunk, n_chunks;
  T eps, cap, floor_;
  bool softmax, keep, masked;
};

template <typename T>
void forward_head(const Args<T>& a, int64_t b, const T* q, const T* k, const T* v, const T* wt,
                  const bool* mask, const T* knorm, T* out, T* den, T* states, T* scores_all,
                  T* totals, T* sum_q, T* run, int64_t* src) {
  const int64_t L = a.length, d = a.d, dv = a.dv, m = a.m, C = a.chunk, w1 = dv + 1;
  std::vector<T> phi(C * m), g(C * m), v1(C * w1), num(C * w1), kmax(C), f(C), total(w1, 0),
      work_state(a.keep ? 0 : w1 * m, 0), sq(C);
  std::vector<T> scores_one(a.keep ? 0 : C * C);
  const T* qb = q + b * L * d;
  const T* kb = k + b * L * d;
  const T* vb = v + b * L * dv;
  const bool* mb = a.masked ? mask + b * L : nullptr;
  T* state = a.keep ? states + b * a.n_chunks * w1 * m : work_state.data();
  if (a.keep) std::fill(state, state + w1 * m, T(0));
  T m_prev = a.floor_;  // M at the end of the previous chunk (R_{c-1})
  int64_t src_prev = -1;
  const T inf = std::numeric_limits<T>::infinity();
  const T tiny = std::numeric_limits<T>::min();
  for (int64_t c = 0; c < a.n_chunks; ++c) {
    const int64_t s = c * C, n = std::min(C, L - s);
    gemm<T>(false, false, n, m, d, 1, qb + s * d, d, wt, m, 0, phi.data(), m);
    gemm<T>(false, false, n, m, d, 1, kb + s * d, d, wt, m, 0, g.data(), m);
    T carry = 1;
    if (a.softmax) {
      for (int64_t i = 0; i < n; ++i) {
        sq[i] = sum_q[b * L + s + i] = softmax_row(phi.data() + i * m, m, a.eps);
        T* gr = g.data() + i * m;
        const T kn = knorm[b * L + s + i];
        T km = -inf;
#pragma omp simd reduction(max : km)
        for (int64_t j = 0; j < m; ++j) {
          gr[j] -= kn;
          km = std::max(km, gr[j]);
        }
        kmax[i] = km;
      }
      // running maximum M_i over keys j <= i (floored), and the key holding it
      T cur = -inf;
      int64_t cur_i = 0;
      T* runb = run + b * L + s;
      int64_t* srcb = src + b * L + s;
      for (int64_t i = 0; i < n; ++i) {
        if (kmax[i] >= cur) {
          cur = kmax[i];
          cur_i = i;
        }
        const bool older = m_prev >= cur;
        runb[i] = older ? m_prev : cur;
        srcb[i] = older ? src_prev : s + cur_i;
      }
      const T r = runb[n - 1];
      if (c > 0) carry = fast_exp2(m_prev - r);
      m_prev = r;
      src_prev = srcb[n - 1];
#pragma omp simd
      for (int64_t i = 0; i < n * m; ++i) g[i] = fast_exp2(g[i] - r);
      for (int64_t i = 0; i < n; ++i) f[i] = fast_exp2(std::min(r - runb[i], a.cap));
    } else {
      relu_features(phi.data(), g.data(), mb, s, n, m, a.eps, true);
    }
    // the state chunk c reads: S_c = carry T_{c-1}, made in place in states[c]
    if (c > 0) {
      T* next = a.keep ? state + w1 * m : state;
#pragma omp simd
      for (int64_t i = 0; i < w1 * m; ++i) next[i] = state[i] * carry;
      state = next;
    }
    fill_v1(v1.data(), vb, mb, s, n, dv);
    T* sc = a.keep ? scores_all + (b * a.n_chunks + c) * C * C : scores_one.data();
    gemm<T>(false, true, n, n, m, 1, phi.data(), m, g.data(), m, 0, sc, n);
    gemm<T>(false, true, n, w1, m, 1, phi.data(), m, state, m, 0, num.data(), w1);
    if (a.softmax) {
      T* tot = totals + (b * a.n_chunks + c) * w1;
      for (int64_t j = 0; j < w1; ++j) tot[j] = total[j];
      for (int64_t i = 0; i < n; ++i) {
        const T fi = f[i], e_sq = a.eps * sq[i];
        for (int64_t j = 0; j < w1; ++j) num[i * w1 + j] = fi * num[i * w1 + j] + e_sq * total[j];
        for (int64_t j = 0; j <= i; ++j) sc[i * n + j] = fi * sc[i * n + j] + e_sq;
        for (int64_t j = i + 1; j < n; ++j) sc[i * n + j] = 0;
      }
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < w1; ++j) total[j] += v1[i * w1 + j];
    } else {
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = i + 1; j < n; ++j) sc[i * n + j] = 0;
    }
    gemm<T>(false, false, n, w1, n, 1, sc, n, v1.data(), w1, 1, num.data(), w1);
    for (int64_t i = 0; i < n; ++i) {
      const T dn = num[i * w1 + dv];
      den[b * L + s + i] = dn;
      const T inv = T(1) / std::max(dn, tiny);  // no real key yet: num is exactly 0
      T* o = out + (b * L + s + i) * dv;
      for (int64_t j = 0; j < dv; ++j) o[j] = num[i * w1 + j] * inv;
    }
    gemm<T>(true, false, w1, m, n, 1, v1.data(), w1, g.data(), m, 1, state, m);  // T_c
  }
}

template <typename T>
void backward_head(const Args<T>& a, int64_t b, const T* q, const T* k, const T* v, const T* wt,
                   const T* we, const bool* mask, const T* knorm, const T* out, const T* den,
                   const T* states, const T* scores_all, const T* totals, const T* sum_q,
                   const T* run, const int64_t* src, const T* g_out, T* g_q, T* g_k, T* g_v,
                   T* g_keymax) {
  const int64_t L = a.length, d = a.d, dv = a.dv, m = a.m, C = a.chunk, w1 = dv + 1;
  std::vector<T> e(C * m), g(C * m), phi(C * m), g_phi(C * m), g_g(C * m), v1(C * w1),
      gn(C * w1), gv1(C * w1), d_sc(C * C), s_c(w1 * m), g_t(w1 * m, 0), g_eps_later(w1, 0),
      f(C), g_sum_q(C), g_m(C), gk(C * d), colsum(w1);
  std::vector<char> over(C);
  const T* qb = q + b * L * d;
  const T* kb = k + b * L * d;
  const T* vb = v + b * L * dv;
  const bool* mb = a.masked ? mask + b * L : nullptr;
  const T rs = T(1) / std::sqrt(T(d));
  T g_r_next = 0;
  for (int64_t c = a.n_chunks - 1; c >= 0; --c) {
    const int64_t s = c * C, n = std::min(C, L - s);
    gemm<T>(false, false, n, m, d, 1, qb + s * d, d, wt, m, 0, e.data(), m);
    gemm<T>(false, false, n, m, d, 1, kb + s * d, d, wt, m, 0, g.data(), m);
    const T* runb = run + b * L + s;
    T carry = 1, r = 0;
    if (a.softmax) {
      r = runb[n - 1];
      if (c > 0) carry = fast_exp2(run[b * L + s - 1] - r);
      for (int64_t i = 0; i < n; ++i) {
        softmax_row(e.data() + i * m, m, T(0));
        T* gr = g.data() + i * m;
        const T sh = knorm[b * L + s + i] + r;
#pragma omp simd
        for (int64_t j = 0; j < m; ++j) gr[j] = fast_exp2(gr[j] - sh);
        const T diff = r - runb[i];
        f[i] = fast_exp2(std::min(diff, a.cap));
        over[i] = diff > a.cap;
      }
    } else {
      relu_features(e.data(), g.data(), mb, s, n, m, a.eps, false);
    }
#pragma omp simd
    for (int64_t i = 0; i < n * m; ++i) phi[i] = e[i] + a.eps;
    if (c > 0) {
      const T* t_prev = states + (b * a.n_chunks + c - 1) * w1 * m;
#pragma omp simd
      for (int64_t i = 0; i < w1 * m; ++i) s_c[i] = t_prev[i] * carry;
    } else {
      std::fill(s_c.begin(), s_c.end(), T(0));
    }
    fill_v1(v1.data(), vb, mb, s, n, dv);
    for (int64_t i = 0; i < n; ++i) {
      // gn = [g_out, -g_out . out] / den, 0 where den <= 0
      const T dn = den[b * L + s + i];
      const T inv = dn > 0 ? T(1) / dn : T(0);
      const T* go = g_out + (b * L + s + i) * dv;
      const T* o = out + (b * L + s + i) * dv;
      T dot = 0;
      for (int64_t j = 0; j < dv; ++j) {
        gn[i * w1 + j] = go[j] * inv;
        dot += go[j] * o[j];
      }
      gn[i * w1 + dv] = -dot * inv;
    }
    const T* sc = scores_all + (b * a.n_chunks + c) * C * C;
    gemm<T>(true, false, n, w1, n, 1, sc, n, gn.data(), w1, 0, gv1.data(), w1);
    gemm<T>(false, true, n, n, w1, 1, gn.data(), w1, v1.data(), w1, 0, d_sc.data(), n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i + 1; j < n; ++j) d_sc[i * n + j] = 0;
    if (a.softmax) {
      const T* tot = totals + (b * a.n_chunks + c) * w1;
      const T* sq = sum_q + b * L + s;
      for (int64_t i = 0; i < n; ++i) {
        T acc = 0;
        for (int64_t j = 0; j <= i; ++j) acc += d_sc[i * n + j];
        T dot = 0;
        for (int64_t j = 0; j < w1; ++j) dot += gn[i * w1 + j] * tot[j];
        g_sum_q[i] = a.eps * (acc + dot);
      }
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < w1; ++j) gv1[i * w1 + j] += g_eps_later[j];
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < w1; ++j) g_eps_later[j] += a.eps * sq[i] * gn[i * w1 + j];
      for (int64_t i = 0; i < n; ++i) {
        g_m[i] = over[i] ? T(0) : sq[i] * g_sum_q[i];
        for (int64_t j = 0; j < w1; ++j) gn[i * w1 + j] *= f[i];  // now ga = dL/d(phi_i S_c)
        for (int64_t j = 0; j <= i; ++j) d_sc[i * n + j] *= f[i];
      }
    }
    const T* ga = gn.data();
    gemm<T>(false, true, n, w1, m, 1, g.data(), m, g_t.data(), m, 1, gv1.data(), w1);
    for (int64_t i = 0; i < n; ++i) {
      T* gvr = g_v + (b * L + s + i) * dv;
      const T mk = is_real(mb, s + i) ? T(1) : T(0);
      for (int64_t j = 0; j < dv; ++j) gvr[j] = gv1[i * w1 + j] * mk;
    }
    gemm<T>(false, false, n, m, w1, 1, ga, w1, s_c.data(), m, 0, g_phi.data(), m);
    gemm<T>(false, false, n, m, n, 1, d_sc.data(), n, g.data(), m, 1, g_phi.data(), m);
    if (a.softmax)
      for (int64_t i = 0; i < n; ++i)
#pragma omp simd
        for (int64_t j = 0; j < m; ++j) g_phi[i * m + j] += g_sum_q[i];
    gemm<T>(true, false, n, m, n, 1, d_sc.data(), n, phi.data(), m, 0, g_g.data(), m);
    gemm<T>(false, false, n, m, w1, 1, v1.data(), w1, g_t.data(), m, 1, g_g.data(), m);
    // dL/dS_c = dL/dT_c + ga^T phi (the state gradient carried back)
    gemm<T>(true, false, w1, m, n, 1, ga, w1, phi.data(), m, 1, g_t.data(), m);
    T* gk_out = g_k + (b * L + s) * d;
    T* gq_out = g_q + (b * L + s) * d;
    if (a.softmax) {
      T dl_sum = 0;
#pragma omp simd reduction(+ : dl_sum)
      for (int64_t i = 0; i < n * m; ++i) {
        g_g[i] *= g[i];  // dl: dL/dl through G = exp(l - R_c)
        dl_sum += g_g[i];
      }
      T gm_sum = 0;
      for (int64_t i = 0; i < n; ++i) gm_sum += g_m[i];
      T g_r = g_r_next - gm_sum - dl_sum;
      if (c > 0) {
        T g_carry = 0;
#pragma omp simd reduction(+ : g_carry)
        for (int64_t i = 0; i < w1 * m; ++i) g_carry += s_c[i] * g_t[i];
        g_r -= g_carry;
        g_r_next = g_carry;
#pragma omp simd
        for (int64_t i = 0; i < w1 * m; ++i) g_t[i] *= carry;
      }
      g_m[n - 1] += g_r;
      const int64_t* srcb = src + b * L + s;
      for (int64_t i = 0; i < n; ++i)
        if (srcb[i] >= 0) g_keymax[b * L + srcb[i]] += g_m[i];
      gemm<T>(false, false, n, d, m, 1, g_g.data(), m, we, d, 0, gk_out, d);
      for (int64_t i = 0; i < n; ++i) {
        T acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t j = 0; j < m; ++j) acc += g_g[i * m + j];
        const T* kr = kb + (s + i) * d;
        for (int64_t j = 0; j < d; ++j) gk_out[i * d + j] -= acc * rs * kr[j];
      }
      for (int64_t i = 0; i < n; ++i) {
        T* dp = g_phi.data() + i * m;
        const T* er = e.data() + i * m;
        T acc = 0, hits = 0;
#pragma omp simd reduction(+ : acc, hits)
        for (int64_t j = 0; j < m; ++j) {
          dp[j] *= er[j];
          acc += dp[j];
          hits += std::floor(er[j]);
        }
        const T corr = acc / hits;
#pragma omp simd
        for (int64_t j = 0; j < m; ++j) dp[j] -= std::floor(er[j]) * corr;
      }
    } else {
#pragma omp simd
      for (int64_t i = 0; i < n * m; ++i) {
        g_g[i] = g[i] > a.eps ? g_g[i] : T(0);
        g_phi[i] = e[i] > 0 ? g_phi[i] : T(0);
      }
      gemm<T>(false, false, n, d, m, 1, g_g.data(), m, we, d, 0, gk_out, d);
    }
    gemm<T>(false, false, n, d, m, 1, g_phi.data(), m, we, d, 0, gq_out, d);
  }
}

template <typename T>
Args<T> make_args(const at::Tensor& q, const at::Tensor& v, const at::Tensor& wt, double eps,
                  int64_t chunk, bool softmax, bool keep, bool masked, double cap, double floor_) {
  Args<T> a;
  a.bh = q.size(0);
  a.length = q.size(1);
  a.d = q.size(2);
  a.dv = v.size(2);
  a.m = wt.size(1);
  a.chunk = std::min<int64_t>(chunk, a.length);
  a.n_chunks = (a.length + a.chunk - 1) / a.chunk;
  a.eps = static_cast<T>(eps);
  a.cap = static_cast<T>(cap);
  a.floor_ = static_cast<T>(floor_);
  a.softmax = softmax;
  a.keep = keep;
  a.masked = masked;
  return a;
}

// q, k [BH, L, d], v [BH, L, Dv], wt [d, m] (the features' pre-activation projection),
// mask [BH, L] bool (or empty), knorm [BH, L] (softmax: |k'|^2/2 log2 e, +inf on padded keys).
// Returns out, den, states [BH, N, Dv+1, m], scores [BH, N, C, C], totals [BH, N, Dv+1],
// sum_q, run [BH, L], src [BH, L] (the saved ones empty when keep is false).
std::vector<at::Tensor> forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& wt, const at::Tensor& mask,
                                const at::Tensor& knorm, double eps, int64_t chunk, bool softmax,
                                bool keep, double cap, double floor_) {
  TORCH_CHECK(q.is_contiguous() && k.is_contiguous() && v.is_contiguous() && wt.is_contiguous(),
              "favor.causal_cpu: inputs must be contiguous");
  const bool masked = mask.numel() > 0;
  const int64_t bh = q.size(0), L = q.size(1), dv = v.size(2), m = wt.size(1);
  const int64_t C = std::min<int64_t>(chunk, L), N = (L + C - 1) / C;
  auto out = at::empty({bh, L, dv}, q.options());
  auto den = at::empty({bh, L}, q.options());
  auto states = at::empty({keep ? bh : 0, N, dv + 1, m}, q.options());
  auto scores = at::empty({keep ? bh : 0, N, C, C}, q.options());
  auto totals = at::empty({softmax ? bh : 0, N, dv + 1}, q.options());
  auto sum_q = at::empty({softmax ? bh : 0, L}, q.options());
  auto run = at::empty({softmax ? bh : 0, L}, q.options());
  auto src = at::empty({softmax ? bh : 0, L}, q.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "favor_causal_forward", [&] {
    auto a = make_args<scalar_t>(q, v, wt, eps, chunk, softmax, keep, masked, cap, floor_);
    at::parallel_for(0, bh, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        forward_head<scalar_t>(a, b, q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(),
                               v.data_ptr<scalar_t>(), wt.data_ptr<scalar_t>(),
                               masked ? mask.data_ptr<bool>() : nullptr,
                               softmax ? knorm.data_ptr<scalar_t>() : nullptr,
                               out.data_ptr<scalar_t>(), den.data_ptr<scalar_t>(),
                               keep ? states.data_ptr<scalar_t>() : nullptr,
                               keep ? scores.data_ptr<scalar_t>() : nullptr,
                               softmax ? totals.data_ptr<scalar_t>() : nullptr,
                               softmax ? sum_q.data_ptr<scalar_t>() : nullptr,
                               softmax ? run.data_ptr<scalar_t>() : nullptr,
                               softmax ? src.data_ptr<int64_t>() : nullptr);
    });
  });
  return {out, den, states, scores, totals, sum_q, run, src};
}

// Gradients g_q, g_k, g_v (g_v not yet masked: padded rows are zeroed here) and
// g_keymax [BH, L] (softmax: dL/d(row max of key j's logits), for favor/common.py add_key_max_grads).
std::vector<at::Tensor> backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& wt, const at::Tensor& we,
                                 const at::Tensor& mask, const at::Tensor& knorm,
                                 const at::Tensor& out, const at::Tensor& den,
                                 const at::Tensor& states, const at::Tensor& scores,
                                 const at::Tensor& totals, const at::Tensor& sum_q,
                                 const at::Tensor& run, const at::Tensor& src,
                                 const at::Tensor& g_out, double eps, int64_t chunk, bool softmax,
                                 double cap) {
  TORCH_CHECK(g_out.is_contiguous() && we.is_contiguous(), "favor.causal_cpu: contiguous grads");
  const bool masked = mask.numel() > 0;
  auto g_q = at::empty_like(q), g_k = at::empty_like(k), g_v = at::empty_like(v);
  auto g_keymax = at::zeros({softmax ? q.size(0) : 0, q.size(1)}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "favor_causal_backward", [&] {
    auto a = make_args<scalar_t>(q, v, wt, eps, chunk, softmax, true, masked, cap, 0.0);
    at::parallel_for(0, a.bh, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        backward_head<scalar_t>(
            a, b, q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
            wt.data_ptr<scalar_t>(), we.data_ptr<scalar_t>(),
            masked ? mask.data_ptr<bool>() : nullptr,
            softmax ? knorm.data_ptr<scalar_t>() : nullptr, out.data_ptr<scalar_t>(),
            den.data_ptr<scalar_t>(), states.data_ptr<scalar_t>(), scores.data_ptr<scalar_t>(),
            softmax ? totals.data_ptr<scalar_t>() : nullptr,
            softmax ? sum_q.data_ptr<scalar_t>() : nullptr,
            softmax ? run.data_ptr<scalar_t>() : nullptr,
            softmax ? src.data_ptr<int64_t>() : nullptr, g_out.data_ptr<scalar_t>(),
            g_q.data_ptr<scalar_t>(), g_k.data_ptr<scalar_t>(), g_v.data_ptr<scalar_t>(),
            softmax ? g_keymax.data_ptr<scalar_t>() : nullptr);
    });
  });
  return {g_q, g_k, g_v, g_keymax};
}

}  // namespace

TORCH_LIBRARY(protein_performer_favor, lib) {
  lib.def("causal_forward", &forward);
  lib.def("causal_backward", &backward);
}
