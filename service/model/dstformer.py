"""DSTformer, MotionBERT's dual-stream spatio-temporal transformer (2D keypoints -> 3D joints); inference.

Conventions (module and parameter names, block order, attention-fusion rule, LayerNorm eps 1e-6, scale
``qk_scale or head_dim ** -0.5``, initialisation) follow the MotionBERT paper (Zhu et al., "MotionBERT: A
Unified Perspective on Learning Human Motion Representations", ICCV 2023) and its official repository
(github.com/Walter0807/MotionBERT, ``lib/model/DSTformer.py``, Apache-2.0). This is an independent
implementation: parameter names equal the official ones (without the DataParallel prefix ``module.``), so
official state dicts load strictly; see ``service/model/checkpoint.py`` for the checkpoint layouts.

Differences from the official code, none of which changes the result beyond fp32 rounding (~1e-6):
- activations stay ``[B, T, J, C]`` instead of ``[B*T, J, C]``; temporal attention transposes its input to
  ``[B, J, T, C]`` so that q, k, v are views of one projection (no copy of the 3C-channel qkv tensor);
- attention over more than 64 positions uses ``torch.nn.functional.scaled_dot_product_attention`` (fused
  kernel, no materialised weights), shorter ones an explicit matmul + softmax;
- no dropout / stochastic depth (inference only): the rates are accepted for config compatibility and ignored.
The module is TorchScript-scriptable (``torch.jit.script``); the exported file accepts any T in 1..maxlen.
"""

from typing import Final

import torch
import torch.nn.functional as F
from torch import nn

# The official loader (lib/utils/learning.py, load_backbone) passes partial(nn.LayerNorm, eps=1e-6).
LAYER_NORM_EPS = 1e-6


def _trunc_normal(t: torch.Tensor, std: float = 0.02) -> None:
    nn.init.trunc_normal_(t, mean=0.0, std=std, a=-2.0, b=2.0)


class MLP(nn.Module):
    """Linear -> GELU (exact) -> Linear over the last dimension."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(F.gelu(self.fc1(x)))
        return out


# Sequences longer than this use the fused attention kernel (scaled_dot_product_attention); shorter ones the
# explicit matmul + softmax. Both compute softmax(q k^T * scale) v.
FUSED_MIN_LENGTH = 64


class Attention(nn.Module):
    """Multi-head self-attention across the joints of a frame (spatial) or the frames of a joint (temporal).

    Input and output ``[B, T, J, C]``. Full (bidirectional) attention, no mask.
    """

    temporal: Final[bool]
    fused_min_length: Final[int]
    num_heads: Final[int]
    scale: Final[float]

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, qk_scale: float | None, temporal: bool) -> None:
        super().__init__()
        self.temporal = temporal
        self.fused_min_length = FUSED_MIN_LENGTH  # TorchScript reads constants from the module, not globals
        self.num_heads = num_heads
        # Official rule, falsy qk_scale (None or 0) included: `qk_scale or head_dim ** -0.5`.
        self.scale = float(qk_scale or (dim // num_heads) ** -0.5)
        # Registration order (proj before qkv) as in the official code: same state-dict key order.
        self.proj = nn.Linear(dim, dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[3]
        h = self.num_heads
        d = c // h
        if self.temporal:
            # One sequence per joint. Transposing the input to [B, J, T, C] (one copy of C channels) makes the
            # qkv projection come out in sequence order, instead of copying its 3C channels afterwards.
            x = x.transpose(1, 2).contiguous()
        # qkv channels are laid out (3, heads, head_dim), as in the official reshape(B, N, 3, H, c); the
        # permute below is a view ([3, B*S, H, L, d] with S the sequences per sample, L their length).
        s, n = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape(b, s, n, 3, h, d).permute(3, 0, 1, 4, 2, 5).reshape(3, b * s, h, n, d)
        y = self._attend(qkv[0], qkv[1], qkv[2])
        out: torch.Tensor = self.proj(y.transpose(1, 2).reshape(b, s, n, c))
        if self.temporal:
            out = out.transpose(1, 2)  # back to [B, T, J, C] as a view; the residual add reads it strided
        return out

    def forward_from(self, x: torch.Tensor, first: int) -> torch.Tensor:
        """Temporal attention for the query frames ``first..T-1`` only, keys and values from every frame:
        ``forward(x)[:, first:]`` (``[B, T - first, J, C]``) without the other rows' queries, weights and
        projections. Spatial attention has no such saving (a frame attends to its own joints only)."""
        b, c = x.shape[0], x.shape[3]
        h = self.num_heads
        d = c // h
        x = x.transpose(1, 2).contiguous()  # [B, J, T, C], as forward
        s, n = x.shape[1], x.shape[2]
        m = n - first
        weight, bias = self.qkv.weight, self.qkv.bias
        # qkv's output channels are (3, heads, head_dim): rows [0, C) of its weight make q, rows [C, 3C) k and v.
        if bias is None:
            q = F.linear(x[:, :, first:], weight[:c])
            kv = F.linear(x, weight[c:])
        else:
            q = F.linear(x[:, :, first:], weight[:c], bias[:c])
            kv = F.linear(x, weight[c:], bias[c:])
        q = q.reshape(b, s, m, h, d).permute(0, 1, 3, 2, 4).reshape(b * s, h, m, d)
        kv = kv.reshape(b, s, n, 2, h, d).permute(3, 0, 1, 4, 2, 5).reshape(2, b * s, h, n, d)
        y = self._attend(q, kv[0], kv[1])
        out: torch.Tensor = self.proj(y.transpose(1, 2).reshape(b, s, m, c))
        return out.transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T * scale) v over ``[N, H, L, d]`` (q may have fewer positions than k and v)."""
        if k.shape[2] > self.fused_min_length:
            return F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        # Short sequences (the 17 joints of a frame, short windows): two batched matmuls and a softmax beat
        # the fused CPU kernel, whose per-call cost dominates at these sizes (measured: tiny model, 27
        # frames, batch 8: the fused kernel took 39% of the time and scaled 5x for 8x the work).
        return torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1) @ v


class Block(nn.Module):
    """Pre-norm residual block: attention + MLP in one stream order, then the other (spatial-first for
    ``stage_st``, temporal-first for ``stage_ts``)."""

    spatial_first: Final[bool]

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        spatial_first: bool,
    ) -> None:
        super().__init__()
        self.spatial_first = spatial_first
        hidden = int(dim * mlp_ratio)
        self.norm1_s = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm1_t = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn_s = Attention(dim, num_heads, qkv_bias, qk_scale, temporal=False)
        self.attn_t = Attention(dim, num_heads, qkv_bias, qk_scale, temporal=True)
        self.norm2_s = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2_t = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp_s = MLP(dim, hidden)
        self.mlp_t = MLP(dim, hidden)

    def _spatial(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn_s(self.norm1_s(x))
        out: torch.Tensor = x + self.mlp_s(self.norm2_s(x))
        return out

    def _temporal(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn_t(self.norm1_t(x))
        out: torch.Tensor = x + self.mlp_t(self.norm2_t(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spatial_first:
            return self._temporal(self._spatial(x))
        return self._spatial(self._temporal(x))

    def forward_from(self, x: torch.Tensor, first: int) -> torch.Tensor:
        """``forward(x)[:, first:]``, computing the rows before ``first`` only where the temporal attention needs
        them as keys and values. Exact: spatial attention and the MLPs work frame by frame."""
        if self.spatial_first:
            return self._temporal_from(self._spatial(x), first)
        return self._spatial(self._temporal_from(x, first))

    def _temporal_from(self, x: torch.Tensor, first: int) -> torch.Tensor:
        x_rows = x[:, first:] + self.attn_t.forward_from(self.norm1_t(x), first)
        out: torch.Tensor = x_rows + self.mlp_t(self.norm2_t(x_rows))
        return out


class PreLogits(nn.Module):
    """Linear -> tanh, named ``pre_logits.fc`` as in the official ``Sequential(OrderedDict(fc=, act=))``."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.tanh(self.fc(x))
        return out


class DSTformer(nn.Module):
    """MotionBERT's DSTformer with the official constructor hyperparameters and defaults.

    ``forward(x)``: ``x`` is ``[B, T, num_joints, dim_in]`` float with ``1 <= T <= maxlen``; returns
    ``[B, T, num_joints, dim_out]`` in ``x``'s dtype. The weights may be cast to bf16 / fp16 (``model.to``):
    ``x`` is then cast to their dtype on the way in and the output back on the way out. Every frame attends to
    every other frame of the window (no mask), so a window's output depends on its length and content only, not
    on the batch it runs in.

    Raises ``ValueError`` at construction for non-positive sizes or ``dim_feat`` not divisible by
    ``num_heads``; the forward pass raises (``ValueError`` eager, ``torch.jit.Error`` scripted) on a wrong
    input shape or T > maxlen. ``drop_rate``, ``attn_drop_rate`` and ``drop_path_rate`` are accepted for
    compatibility and ignored.
    """

    num_joints: Final[int]
    dim_in: Final[int]
    maxlen: Final[int]
    att_fuse: Final[bool]
    depth: Final[int]

    def __init__(
        self,
        dim_in: int = 3,
        dim_out: int = 3,
        dim_feat: int = 256,
        dim_rep: int = 512,
        depth: int = 5,
        num_heads: int = 8,
        mlp_ratio: float = 4,
        num_joints: int = 17,
        maxlen: int = 243,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        att_fuse: bool = True,
    ) -> None:
        super().__init__()
        sizes = {
            "dim_in": dim_in,
            "dim_out": dim_out,
            "dim_feat": dim_feat,
            "dim_rep": dim_rep,
            "depth": depth,
        }
        sizes |= {"num_heads": num_heads, "num_joints": num_joints, "maxlen": maxlen}
        bad = [f"{k}={v}" for k, v in sizes.items() if v < 1]
        if bad or mlp_ratio <= 0:
            raise ValueError(f"DSTformer sizes must be positive: {', '.join(bad) or f'mlp_ratio={mlp_ratio}'}")
        if dim_feat % num_heads:
            raise ValueError(f"dim_feat={dim_feat} is not divisible by num_heads={num_heads}")
        self.num_joints = num_joints
        self.dim_in = dim_in
        self.maxlen = maxlen
        self.att_fuse = att_fuse
        self.depth = depth
        # Creation order follows the official class (same state-dict key order).
        self.joints_embed = nn.Linear(dim_in, dim_feat)
        self.blocks_st = nn.ModuleList(
            [Block(dim_feat, num_heads, mlp_ratio, qkv_bias, qk_scale, spatial_first=True) for _ in range(depth)]
        )
        self.blocks_ts = nn.ModuleList(
            [Block(dim_feat, num_heads, mlp_ratio, qkv_bias, qk_scale, spatial_first=False) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim_feat, eps=LAYER_NORM_EPS)
        self.pre_logits = PreLogits(dim_feat, dim_rep)
        self.head = nn.Linear(dim_rep, dim_out)
        self.temp_embed = nn.Parameter(torch.zeros(1, maxlen, 1, dim_feat))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_joints, dim_feat))
        _trunc_normal(self.temp_embed)
        _trunc_normal(self.pos_embed)
        self.apply(_init_weights)
        # Per-depth stream fusion: softmax over Linear(2C -> 2) of [x_st, x_ts]; starts as an even mix.
        fuse = [nn.Linear(dim_feat * 2, 2) for _ in range(depth if att_fuse else 0)]
        for lin in fuse:
            nn.init.zeros_(lin.weight)
            nn.init.constant_(lin.bias, 0.5)
        self.ts_attn = nn.ModuleList(fuse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(x, 0)

    @torch.jit.export
    def forward_from(self, x: torch.Tensor, first: int) -> torch.Tensor:
        """``forward(x)[:, first:]`` (``[B, T - first, J, dim_out]``) for ``0 <= first < T``, with less work: the
        last depth's blocks compute their temporal queries, MLPs and what follows for the frames ``first..T-1``
        only (a causal stream needs one row: the default model then does ~0.7 x the work). Every other block
        mixes all frames and runs in full. ``first`` 0 is ``forward``, operation for operation. Raises as
        ``forward``, and for ``first`` outside ``0..T-1``."""
        if x.dim() != 4 or x.shape[2] != self.num_joints or x.shape[3] != self.dim_in:
            raise ValueError(f"expected input [B, T, {self.num_joints}, {self.dim_in}], got {list(x.shape)}")
        t = x.shape[1]
        if t < 1 or t > self.maxlen:
            raise ValueError(f"window length T={t} is outside 1..{self.maxlen}")
        if first < 0 or first >= t:
            raise ValueError(f"first row {first} is outside 0..{t - 1}")
        # The output has the input's dtype (float32 in serving) whatever the weights' precision (fp32 / bf16 /
        # fp16): callers, the Triton config and the wire format never see the compute dtype.
        io_dtype = x.dtype
        x = x.to(self.joints_embed.weight.dtype)
        x = self.joints_embed(x) + self.pos_embed + self.temp_embed[:, :t]
        level = 0
        if self.att_fuse:
            for blk_st, blk_ts, fuse in zip(self.blocks_st, self.blocks_ts, self.ts_attn):  # noqa: B905
                if first > 0 and level == self.depth - 1:
                    # ModuleList items are Modules to mypy; TorchScript knows them as Blocks.
                    x_st = blk_st.forward_from(x, first)  # type: ignore[operator]
                    x_ts = blk_ts.forward_from(x, first)  # type: ignore[operator]
                else:
                    x_st = blk_st(x)
                    x_ts = blk_ts(x)
                alpha = fuse(torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)
                x = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]
                level += 1
        else:
            for blk_st, blk_ts in zip(self.blocks_st, self.blocks_ts):  # noqa: B905 (no strict= in TorchScript)
                if first > 0 and level == self.depth - 1:
                    x_st = blk_st.forward_from(x, first)  # type: ignore[operator]
                    x = (x_st + blk_ts.forward_from(x, first)) * 0.5  # type: ignore[operator]
                else:
                    x = (blk_st(x) + blk_ts(x)) * 0.5
                level += 1
        out: torch.Tensor = self.head(self.pre_logits(self.norm(x)))
        return out.to(io_dtype)


def _init_weights(m: nn.Module) -> None:
    # Official init: truncated normal (std 0.02) Linear weights, zero biases, LayerNorm weight 1 / bias 0.
    if isinstance(m, nn.Linear):
        _trunc_normal(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
