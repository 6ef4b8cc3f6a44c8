// Fused FastGRNN sequence for CPU: the whole time loop and its backward through time in C++.
//
// Kusupati et al., "FastGRNN", NeurIPS 2018, eqs. (3)-(4); see edge_str/fused.py for the
// equations and the gradient derivation. Per step, forward: one gemm (h_{t-1} U^T, ATen/MKL)
// and ONE pass over the (B, H) elements computing z, c and h_t together; backward: one pass
// computing dpre_t, g_t ⊙ z_t and the bias/zeta/nu partial sums, then one gemm (dpre_t U).
// dU is one [H, T*B] x [T*B, H] product after the loop.
//
// The float kernels use a branch-free polynomial exp (Cephes expf) so that gcc vectorises them;
// z and c come from two exps and one shared division (max abs error 1.6e-7 for z and 3.4e-7
// for c over [-50, 50], against 0.9e-7 / 1.0e-7 for float libm). They are compiled for several
// x86-64 levels with target_clones (picked when the library loads). Double precision uses
// std::exp / std::tanh (used by the float64 gradcheck).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EDGE_STR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EDGE_STR_CLONES
#endif
#define EDGE_STR_INLINE static inline __attribute__((always_inline))

namespace {

// Cephes expf, clamped to the finite range; branch-free and call-free so that loops using it
// vectorise. n = round(x / ln 2) by the 1.5 * 2^23 trick (no floorf call on plain x86-64).
EDGE_STR_INLINE float exp_approx(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

EDGE_STR_INLINE float clamp40(float x) {
  x = x < -40.0f ? -40.0f : x;
  return x > 40.0f ? 40.0f : x;
}

// One forward step over a (rows, H) block of the batch: z, c and the next state. Both gates
// share one division: with A = 1 + exp(-(pre + b_z)) and C = 1 + exp(-2 (pre + b_h)),
//   z = 1 / A = C / (A C),   c = tanh(pre + b_h) = 2 / C - 1 = 2 A / (A C) - 1.
// The exponents are clamped to +-40 (so A C stays finite); that moves sigmoid/tanh by < 1e-17.
EDGE_STR_CLONES void forward_step_f32(const float* __restrict__ wx, const float* __restrict__ uh,
                                      const float* __restrict__ h, const float* __restrict__ bz,
                                      const float* __restrict__ bh, float sz, float sn,
                                      float* __restrict__ z, float* __restrict__ c,
                                      float* __restrict__ h_next, int64_t rows, int64_t hidden) {
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t o = b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const float pre = wx[o + j] + uh[o + j];
      const float a = 1.0f + exp_approx(clamp40(-(pre + bz[j])));
      const float e = 1.0f + exp_approx(clamp40(-2.0f * (pre + bh[j])));
      const float r = 1.0f / (a * e);
      const float zz = e * r;
      const float cc = 2.0f * (a * r) - 1.0f;
      z[o + j] = zz;
      c[o + j] = cc;
      h_next[o + j] = zz * h[o + j] + (sz * (1.0f - zz) + sn) * cc;
    }
  }
}

// One backward step: dpre = g ⊙ G, g_prev = g ⊙ z (the gemm dpre U is added after), and the
// per-unit partial sums for b_z, b_h, zeta and nu (double accumulators).
EDGE_STR_CLONES void backward_step_f32(const float* __restrict__ g, const float* __restrict__ z,
                                       const float* __restrict__ c, const float* __restrict__ h,
                                       float sz, float sn, float* __restrict__ dpre,
                                       float* __restrict__ g_prev, double* __restrict__ acc_bz,
                                       double* __restrict__ acc_bh, double* __restrict__ acc_zeta,
                                       double* __restrict__ acc_nu, int64_t batch, int64_t hidden) {
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t o = b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const float gg = g[o + j], zz = z[o + j], cc = c[o + j];
      const float omz = 1.0f - zz;
      const float pz = gg * (h[o + j] - sz * cc) * zz * omz;
      const float gc = gg * cc;
      const float pc = gg * (sz * omz + sn) * (1.0f - cc * cc);
      dpre[o + j] = pz + pc;
      g_prev[o + j] = gg * zz;
      acc_bz[j] += static_cast<double>(pz);
      acc_bh[j] += static_cast<double>(pc);
      acc_zeta[j] += static_cast<double>(gc * omz);
      acc_nu[j] += static_cast<double>(gc);
    }
  }
}

template <typename T>
void forward_step_generic(const T* wx, const T* uh, const T* h, const T* bz, const T* bh, T sz,
                          T sn, T* z, T* c, T* h_next, int64_t batch, int64_t hidden) {
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t o = b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const T pre = wx[o + j] + uh[o + j];
      const T zz = T(1) / (T(1) + std::exp(-(pre + bz[j])));
      const T cc = std::tanh(pre + bh[j]);
      z[o + j] = zz;
      c[o + j] = cc;
      h_next[o + j] = zz * h[o + j] + (sz * (T(1) - zz) + sn) * cc;
    }
  }
}

template <typename T>
void backward_step_generic(const T* g, const T* z, const T* c, const T* h, T sz, T sn, T* dpre,
                           T* g_prev, double* acc_bz, double* acc_bh, double* acc_zeta,
                           double* acc_nu, int64_t batch, int64_t hidden) {
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t o = b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const T gg = g[o + j], zz = z[o + j], cc = c[o + j];
      const T omz = T(1) - zz;
      const T pz = gg * (h[o + j] - sz * cc) * zz * omz;
      const T gc = gg * cc;
      const T pc = gg * (sz * omz + sn) * (T(1) - cc * cc);
      dpre[o + j] = pz + pc;
      g_prev[o + j] = gg * zz;
      acc_bz[j] += static_cast<double>(pz);
      acc_bh[j] += static_cast<double>(pc);
      acc_zeta[j] += static_cast<double>(gc * omz);
      acc_nu[j] += static_cast<double>(gc);
    }
  }
}

void forward_step(const at::Tensor& wx, const at::Tensor& uh, const at::Tensor& h,
                  const at::Tensor& bz, const at::Tensor& bh, double sz, double sn, at::Tensor& z,
                  at::Tensor& c, at::Tensor& h_next) {
  const int64_t batch = h.size(0), hidden = h.size(1);
  if (wx.scalar_type() == at::kFloat) {
    forward_step_f32(wx.data_ptr<float>(), uh.data_ptr<float>(), h.data_ptr<float>(),
                     bz.data_ptr<float>(), bh.data_ptr<float>(), static_cast<float>(sz),
                     static_cast<float>(sn), z.data_ptr<float>(), c.data_ptr<float>(),
                     h_next.data_ptr<float>(), batch, hidden);
  } else {
    forward_step_generic<double>(wx.data_ptr<double>(), uh.data_ptr<double>(),
                                 h.data_ptr<double>(), bz.data_ptr<double>(),
                                 bh.data_ptr<double>(), sz, sn, z.data_ptr<double>(),
                                 c.data_ptr<double>(), h_next.data_ptr<double>(), batch, hidden);
  }
}

void backward_step(const at::Tensor& g, const at::Tensor& z, const at::Tensor& c,
                   const at::Tensor& h, double sz, double sn, at::Tensor& dpre, at::Tensor& g_prev,
                   at::Tensor& acc) {
  const int64_t batch = g.size(0), hidden = g.size(1);
  double* a = acc.data_ptr<double>();
  if (g.scalar_type() == at::kFloat) {
    backward_step_f32(g.data_ptr<float>(), z.data_ptr<float>(), c.data_ptr<float>(),
                      h.data_ptr<float>(), static_cast<float>(sz), static_cast<float>(sn),
                      dpre.data_ptr<float>(), g_prev.data_ptr<float>(), a, a + hidden,
                      a + 2 * hidden, a + 3 * hidden, batch, hidden);
  } else {
    backward_step_generic<double>(g.data_ptr<double>(), z.data_ptr<double>(), c.data_ptr<double>(),
                                  h.data_ptr<double>(), sz, sn, dpre.data_ptr<double>(),
                                  g_prev.data_ptr<double>(), a, a + hidden, a + 2 * hidden,
                                  a + 3 * hidden, batch, hidden);
  }
}

void check_inputs(const at::Tensor& wx, const at::Tensor& u, const at::Tensor& bz,
                  const at::Tensor& bh, const at::Tensor& h0) {
  TORCH_CHECK(wx.dim() == 3, "wx must be (T, B, H)");
  TORCH_CHECK(wx.device().is_cpu(), "the fused FastGRNN extension runs on CPU only");
  TORCH_CHECK(wx.scalar_type() == at::kFloat || wx.scalar_type() == at::kDouble,
              "float32 or float64 only");
  const int64_t batch = wx.size(1), hidden = wx.size(2);
  TORCH_CHECK(u.sizes() == at::IntArrayRef({hidden, hidden}), "U must be (H, H)");
  TORCH_CHECK(bz.numel() == hidden && bh.numel() == hidden, "biases must have H entries");
  TORCH_CHECK(h0.sizes() == at::IntArrayRef({batch, hidden}), "h0 must be (B, H)");
  for (const auto* t : {&u, &bz, &bh, &h0}) {
    TORCH_CHECK(t->scalar_type() == wx.scalar_type(), "all tensors must share one dtype");
  }
}

// wx (T, B, H) -> (h_T (B, H), hs (T, B, H) = h_0..h_{T-1}, zs, cs). Without ``save`` only two
// states and one step of gates are kept (hs, zs, cs then hold scratch values).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fastgrnn_forward(
    const at::Tensor& wx_in, const at::Tensor& u_in, const at::Tensor& bz_in,
    const at::Tensor& bh_in, double sz, double sn, const at::Tensor& h0, bool save) {
  check_inputs(wx_in, u_in, bz_in, bh_in, h0);
  at::NoGradGuard no_grad;
  const at::Tensor wx = wx_in.contiguous(), bz = bz_in.contiguous(), bh = bh_in.contiguous();
  const at::Tensor ut = u_in.t();
  const int64_t steps = wx.size(0), batch = wx.size(1), hidden = wx.size(2);
  const int64_t keep = save ? steps : 1;
  at::Tensor hs = at::empty({save ? steps : 2, batch, hidden}, wx.options());
  at::Tensor zs = at::empty({keep, batch, hidden}, wx.options());
  at::Tensor cs = at::empty({keep, batch, hidden}, wx.options());
  at::Tensor out = at::empty({batch, hidden}, wx.options());
  at::Tensor uh = at::empty({batch, hidden}, wx.options());
  if (steps == 0) {
    out.copy_(h0);
    return {out, hs, zs, cs};
  }
  hs.select(0, 0).copy_(h0);
  for (int64_t t = 0; t < steps; ++t) {
    at::Tensor h = hs.select(0, save ? t : t % 2);
    at::Tensor z = zs.select(0, save ? t : 0);
    at::Tensor c = cs.select(0, save ? t : 0);
    at::Tensor h_next = t + 1 == steps ? out : hs.select(0, save ? t + 1 : (t + 1) % 2);
    at::mm_out(uh, h, ut);
    forward_step(wx.select(0, t), uh, h, bz, bh, sz, sn, z, c, h_next);
  }
  return {out, hs, zs, cs};
}

// Backward through time from g_T = grad_out. Returns (d wx (T, B, H), dU (H, H), d b_z (H),
// d b_h (H), sums (2,) = [Σ g ⊙ (1 - z) ⊙ c, Σ g ⊙ c] (the zeta / nu gradients before the
// sigmoid' factor), dh0 (B, H) or an empty tensor without ``need_h0``).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
fastgrnn_backward(const at::Tensor& grad_out, const at::Tensor& u, const at::Tensor& hs,
                  const at::Tensor& zs, const at::Tensor& cs, double sz, double sn, bool need_u,
                  bool need_h0) {
  at::NoGradGuard no_grad;
  const int64_t steps = zs.size(0), batch = zs.size(1), hidden = zs.size(2);
  const auto opts = zs.options();
  at::Tensor dpre = at::empty({steps, batch, hidden}, opts);
  at::Tensor acc = at::zeros({4, hidden}, opts.dtype(at::kDouble));
  at::Tensor g = grad_out.contiguous().clone();
  at::Tensor g_prev = at::empty({batch, hidden}, opts);
  for (int64_t t = steps - 1; t >= 0; --t) {
    at::Tensor dp = dpre.select(0, t);
    backward_step(g, zs.select(0, t), cs.select(0, t), hs.select(0, t), sz, sn, dp, g_prev, acc);
    if (t > 0 || need_h0) {
      g_prev.addmm_(dp, u);  // g_{t-1} = g_t ⊙ z_t + dpre_t U
      std::swap(g, g_prev);
    }
  }
  at::Tensor du;
  if (need_u) {
    du = at::mm(dpre.view({steps * batch, hidden}).t(), hs.view({steps * batch, hidden}));
  } else {
    du = at::empty({0}, opts);
  }
  at::Tensor sums = at::stack({acc[2].sum(), acc[3].sum()}).to(zs.scalar_type());
  at::Tensor dh0 = need_h0 ? g : at::empty({0}, opts);
  return {dpre, du, acc[0].to(zs.scalar_type()), acc[1].to(zs.scalar_type()), sums, dh0};
}

}  // namespace

TORCH_LIBRARY(edge_str_fused, m) {
  m.def("forward", &fastgrnn_forward);
  m.def("backward", &fastgrnn_backward);
}
