"""Swin Transformer V2 Tiny (Liu et al., 2022) as built by torchvision 0.14's swin_v2_t(weights=None):
patch 4, embed 96, depths (2, 2, 6, 2), heads (3, 6, 12, 24), window 8x8, cosine attention with a
learned logit scale, continuous relative position bias (CPB MLP, 16*sigmoid), res-post-norm,
PatchMergingV2, 1000 classes, about 28.35M parameters.

torchvision's shifted-window attention cannot be exported as is: it zeroes the key bias with an
in-place `zero_()` on a slice (aten::zero has no ONNX symbolic) and fills the shift mask with in-place
slice assignments. Each ShiftedWindowAttentionV2 module is switched here to ExportableWindowAttentionV2,
a subclass with an out-of-place forward (same parameters, same math): the key bias is replaced by
concatenating zeros, and the shift mask is computed from region ids with comparisons. The model is
checked against torchvision's own forward before export (1e-4).

Inputs: 224x224 (stage maps 56/28/14/7: the 28, 14 and 7 maps are padded to multiples of the window;
the 7x7 map fits one window, so that stage does not shift) and 256x256 (maps 64/32/16/8, no padding).
The 8x8 window needs no other constructor argument at 256.
"""
import math
import pathlib
import warnings

import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

from make_zoo import InputSpec, ZooModel


def _shift_mask(hp, wp, wh, ww, sh, sw):
    """Additive attention mask [num_windows, wh*ww, wh*ww]: -100 between tokens that came from
    different regions of the cyclically shifted map, 0 otherwise."""
    rows, cols = torch.arange(hp), torch.arange(wp)
    region_r = (rows >= hp - wh).long() + (rows >= hp - sh).long()
    region_c = (cols >= wp - ww).long() + (cols >= wp - sw).long()
    region = region_r[:, None] * 3 + region_c[None, :]  # [hp, wp]
    region = region.view(hp // wh, wh, wp // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    same = region[:, None, :] == region[:, :, None]
    return torch.where(same, torch.tensor(0.0), torch.tensor(-100.0))


class ExportableWindowAttentionV2(ShiftedWindowAttentionV2):
    """ShiftedWindowAttentionV2 with an out-of-place forward."""

    def forward(self, x):
        # Python ints: the export is for one fixed input size, so the padding, the window partition
        # and the shift mask become constants instead of Shape arithmetic.
        b, h, w, c = (int(d) for d in x.shape)
        wh, ww = self.window_size
        heads = self.num_heads
        pad_b, pad_r = (wh - h % wh) % wh, (ww - w % ww) % ww
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        # No shift when the (padded) map fits in one window.
        sh = 0 if wh >= hp else self.shift_size[0]
        sw = 0 if ww >= wp else self.shift_size[1]
        shifted = sh + sw > 0
        if shifted:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
        nw, n = (hp // wh) * (wp // ww), wh * ww
        win = x.view(b, hp // wh, wh, wp // ww, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b * nw, n, c)

        bias = self.qkv.bias
        if bias is not None:  # Swin V2 has no key bias.
            q_bias, _, v_bias = bias.chunk(3)
            bias = torch.cat((q_bias, torch.zeros_like(q_bias), v_bias))
        qkv = F.linear(win, self.qkv.weight, bias).reshape(b * nw, n, 3, heads, c // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # [b*nw, heads, n, d] each
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        attn = attn + self.get_relative_position_bias()
        if shifted:
            mask = _shift_mask(hp, wp, wh, ww, sh, sw).to(attn.dtype)
            attn = (attn.view(b, nw, heads, n, n) + mask[None, :, None]).view(b * nw, heads, n, n)
        attn = F.softmax(attn, dim=-1)
        attn = F.dropout(attn, p=self.attention_dropout, training=self.training)

        out = (attn @ v).transpose(1, 2).reshape(b * nw, n, c)
        out = F.dropout(self.proj(out), p=self.dropout, training=self.training)
        out = out.view(b, hp // wh, wp // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        if shifted:
            out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
        return out[:, :h, :w, :].contiguous()


def build_model():
    torch.manual_seed(0)
    model = torchvision.models.swin_v2_t(weights=None).eval()
    for m in model.modules():
        if type(m) is ShiftedWindowAttentionV2:
            m.__class__ = ExportableWindowAttentionV2
    return model


def make_build(size):
    def build(path: pathlib.Path):
        model = build_model()
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(2))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(model, (x,), str(path), opset_version=17, input_names=["x"],
                              output_names=["logits"], do_constant_folding=True)
    return build


NOTES = {
    "source": "torchvision 0.14 swin_v2_t(weights=None), torch.manual_seed(0): embed 96, depths 2-2-6-2, "
              "heads 3-6-12-24, window 8, 1000 classes",
    "export": "ShiftedWindowAttentionV2 forward replaced by an out-of-place equivalent (no in-place zero_ "
              "of the key bias, shift mask from region-id comparisons); shift masks are constants (fixed input size), the CPB MLP stays in the graph",
}

MODELS = [
    ZooModel("swinv2_t", make_build(224), [InputSpec("x", "float32", [1, 3, 224, 224], 0.0, 1.0)],
             dict(NOTES, resolution="224x224 (stage maps 56/28/14/7; 28/14/7 padded to the 8x8 window)")),
    ZooModel("swinv2_t_256", make_build(256), [InputSpec("x", "float32", [1, 3, 256, 256], 0.0, 1.0)],
             dict(NOTES, resolution="256x256 (stage maps 64/32/16/8, no padding)")),
]
