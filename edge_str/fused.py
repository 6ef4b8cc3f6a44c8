"""A fused FastGRNN sequence: the whole time loop as one autograd node with a hand-written BPTT.

Kusupati et al., "FastGRNN", NeurIPS 2018, eqs. (3)-(4), W and U shared by both gates. Given the
input projections wx_t = W x_t (all steps at once, outside) and the already thresholded U:
    pre_t = wx_t + U h_{t-1}                       (B, H)
    z_t   = sigmoid(pre_t + b_z)
    c_t   = tanh(pre_t + b_h)                      (h~_t in the paper)
    h_t   = z_t ⊙ h_{t-1} + (ζ' (1 - z_t) + ν') ⊙ c_t,   ζ' = sigmoid(zeta), ν' = sigmoid(nu)
          = (ζ' + ν') c_t + z_t ⊙ d_t,                    d_t = h_{t-1} - ζ' c_t
Backward through time, with g_t = dL/dh_t (g_T from outside):
    dpre_t  = g_t ⊙ G_t,  G_t = d_t ⊙ z_t (1 - z_t)  +  (ζ'(1 - z_t) + ν') ⊙ (1 - c_t²)
    g_{t-1} = g_t ⊙ z_t + dpre_t U
    dU      = Σ_t dpre_tᵀ h_{t-1}           (one [H, B·T] x [B·T, H] product after the loop)
    d wx_t  = dpre_t,   d b_z = Σ g ⊙ d ⊙ z(1 - z),   d b_h = Σ dpre - d b_z
    d zeta  = ζ'(1 - ζ') Σ g ⊙ (1 - z) ⊙ c,   d nu = ν'(1 - ν') Σ g ⊙ c
Only the recurrence (one matrix product and a few elementwise ops per step, both ways) runs
step by step; everything that does not depend on the previous step (G, the parameter gradients)
is computed for all steps at once. The STR threshold and low-rank products that make U and W
stay outside this node, so their gradients come from ordinary autograd.

Two implementations of the same node: ``FastGRNNSequence`` in PyTorch (a handful of ATen calls
per step) and ``FastGRNNSequenceCpp``, which runs both loops in C++ with one fused elementwise
pass per step (``csrc/fastgrnn_fused.cpp``, built once and cached by ``edge_str.fused_ext``).
``fastgrnn_sequence`` takes the C++ one for float32/float64 CPU tensors when it is available and
the PyTorch one otherwise; both agree with the reference loop to float rounding.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

BACKENDS = ("auto", "cpp", "torch")


def _gate_scalars(zeta: torch.Tensor, nu: torch.Tensor) -> tuple[float, float]:
    """sigmoid(zeta), sigmoid(nu) as Python floats (the loop uses them as scalar operands)."""
    sz = float(torch.sigmoid(zeta.detach()).reshape(()))
    sn = float(torch.sigmoid(nu.detach()).reshape(()))
    return sz, sn


class FastGRNNSequence(torch.autograd.Function):
    """Time-major core: (wx (T,B,H), U (H,H), b_z (H), b_h (H), zeta (1), nu (1), h0 (B,H)) -> h_T.

    All per-step tensors live in (T, B, H) buffers so that each step reads and writes contiguous
    (B, H) slices (strided slices make MKL's gemm and the vectorised tanh several times slower).
    """

    @staticmethod
    def forward(ctx, wx, u, b_z, b_h, zeta, nu, h0):
        steps, batch, hidden = wx.shape
        sz, sn = _gate_scalars(zeta, nu)
        save = any(ctx.needs_input_grad)
        # The biases are added to the input projections once, for all steps.
        wxz = torch.add(wx, b_z)  # W x_t + b_z, (T, B, H)
        wxh = torch.add(wx, b_h)  # W x_t + b_h, (T, B, H)
        # h_{t-1}, z_t, c_t, d_t for every step (T, B, H); without gradients, two states and one
        # step of gates are enough.
        keep = steps if save else 1
        hs = wx.new_empty(steps if save else 2, batch, hidden)
        zs = wx.new_empty(keep, batch, hidden)
        cs = wx.new_empty(keep, batch, hidden)
        ds = wx.new_empty(keep, batch, hidden)
        out = wx.new_empty(batch, hidden)
        uh = wx.new_empty(batch, hidden)  # U h_{t-1}
        ut = u.t()
        hv, zv, cv, dv = hs.unbind(0), zs.unbind(0), cs.unbind(0), ds.unbind(0)
        wxzv, wxhv = wxz.unbind(0), wxh.unbind(0)
        hv[0].copy_(h0)
        for t in range(steps):
            i = t if save else 0
            h = hv[t if save else t % 2]
            z, c, d = zv[i], cv[i], dv[i]
            torch.mm(h, ut, out=uh)
            torch.add(wxzv[t], uh, out=z).sigmoid_()
            torch.add(wxhv[t], uh, out=c).tanh_()
            torch.add(h, c, alpha=-sz, out=d)
            h_next = out if t + 1 == steps else hv[t + 1 if save else (t + 1) % 2]
            torch.mul(c, sz + sn, out=h_next).addcmul_(z, d)
        if save:
            ctx.save_for_backward(u, hs, zs, cs, ds)
            ctx.gates = (sz, sn)
            ctx.scalar_shapes = (zeta.shape, nu.shape)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        u, hs, zs, cs, ds = ctx.saved_tensors
        sz, sn = ctx.gates
        steps, batch, hidden = zs.shape
        need_wx, need_u, need_bz, need_bh, need_zeta, need_nu, need_h0 = ctx.needs_input_grad
        # Everything that does not depend on g_t, for all steps at once. Five (T, B, H) buffers
        # in all: 1 - z, the z path of G, G, g and dpre (also scratch before the loop).
        gs = torch.empty_like(zs)  # g_t = dL/dh_t for t = 1..T, at index t - 1
        dpre = torch.empty_like(zs)  # dL/dpre_t = dL/d(wx_t)
        one_m_z = torch.rsub(zs, 1.0)  # 1 - z
        dz = torch.mul(one_m_z, zs).mul_(ds)  # d ⊙ z(1 - z): dh_t/dpre_t through z
        gmat = torch.mul(one_m_z, sz).add_(sn)  # ζ'(1 - z) + ν'
        gmat.mul_(torch.mul(cs, cs, out=dpre).neg_().add_(1.0))  # ... ⊙ (1 - c²): through c
        gmat.add_(dz)  # G
        gv, gmv, dpv, zv = gs.unbind(0), gmat.unbind(0), dpre.unbind(0), zs.unbind(0)
        gv[steps - 1].copy_(grad_out)
        dh0 = None
        for t in range(steps - 1, -1, -1):
            g = gv[t]
            torch.mul(g, gmv[t], out=dpv[t])
            if t > 0:
                torch.mul(g, zv[t], out=gv[t - 1]).addmm_(dpv[t], u)
            elif need_h0:
                dh0 = torch.mul(g, zv[0]).addmm_(dpv[0], u)
        flat = (steps * batch, hidden)
        d_u = dpre.view(flat).t().mm(hs.view(flat)) if need_u else None
        d_bz = d_bh = d_zeta = d_nu = None
        if need_bz or need_bh:
            d_bz = dz.mul_(gs).sum((0, 1))
            if need_bh:
                d_bh = dpre.sum((0, 1)) - d_bz
        if need_zeta or need_nu:
            gc = torch.mul(gs, cs, out=gmat).view(-1)  # G is no longer needed
            if need_nu:
                d_nu = (gc.sum() * (sn * (1 - sn))).reshape(ctx.scalar_shapes[1])
            if need_zeta:
                d_zeta = torch.dot(gc, one_m_z.view(-1)) * (sz * (1 - sz))
                d_zeta = d_zeta.reshape(ctx.scalar_shapes[0])
        return (dpre if need_wx else None), d_u, d_bz, d_bh, d_zeta, d_nu, dh0


class FastGRNNSequenceCpp(torch.autograd.Function):
    """``FastGRNNSequence`` with both time loops in the C++ kernel (same arguments, same result)."""

    @staticmethod
    def forward(ctx, wx, u, b_z, b_h, zeta, nu, h0):
        sz, sn = _gate_scalars(zeta, nu)
        save = any(ctx.needs_input_grad)
        out, hs, zs, cs = torch.ops.edge_str_fused.forward(wx, u, b_z, b_h, sz, sn, h0, save)
        if save:
            ctx.save_for_backward(u, hs, zs, cs)
            ctx.gates = (sz, sn)
            ctx.scalar_shapes = (zeta.shape, nu.shape)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        u, hs, zs, cs = ctx.saved_tensors
        sz, sn = ctx.gates
        need = ctx.needs_input_grad
        d_wx, d_u, d_bz, d_bh, sums, dh0 = torch.ops.edge_str_fused.backward(
            grad_out, u, hs, zs, cs, sz, sn, need[1], need[6]
        )
        d_zeta = (sums[0] * (sz * (1 - sz))).reshape(ctx.scalar_shapes[0])
        d_nu = (sums[1] * (sn * (1 - sn))).reshape(ctx.scalar_shapes[1])
        return (
            d_wx if need[0] else None,
            d_u if need[1] else None,
            d_bz if need[2] else None,
            d_bh if need[3] else None,
            d_zeta if need[4] else None,
            d_nu if need[5] else None,
            dh0 if need[6] else None,
        )


def _cpp_usable(tensors: tuple[torch.Tensor, ...]) -> bool:
    from edge_str import fused_ext  # imported late: ``python -m edge_str.fused_ext`` stays clean

    dtype = tensors[0].dtype
    return (
        dtype in (torch.float32, torch.float64)
        and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)
        and fused_ext.load_extension()
    )


def fastgrnn_sequence(
    wx: torch.Tensor,
    u: torch.Tensor,
    b_z: torch.Tensor,
    b_h: torch.Tensor,
    zeta: torch.Tensor,
    nu: torch.Tensor,
    h0: torch.Tensor,
    *,
    batch_first: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    """Run FastGRNN over the input projections wx from h0 (B, H); returns h_T (B, H).

    wx is (B, T, H) with ``batch_first`` (default) or (T, B, H) without; the time-major layout
    is the one the loop works in, so passing it avoids a transposing copy. Differentiable in
    every argument. ``backend``: "auto" (the C++ kernel where it can run, else PyTorch),
    "cpp" (raises if the kernel cannot be used) or "torch".
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if batch_first:
        wx = wx.transpose(0, 1)
    if wx.shape[0] == 0:
        return h0
    args = (wx.contiguous(), u, b_z, b_h, zeta, nu, h0)
    if backend != "torch" and _cpp_usable(args):
        return FastGRNNSequenceCpp.apply(*args)
    if backend == "cpp":
        from edge_str import fused_ext

        raise RuntimeError(
            "the fused FastGRNN C++ kernel cannot run here "
            f"(float32/float64 CPU tensors only): {fused_ext.extension_info()['failed']}"
        )
    return FastGRNNSequence.apply(*args)
