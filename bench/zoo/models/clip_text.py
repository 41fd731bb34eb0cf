"""CLIP ViT-B/32 text tower (Radford et al., 2021).

Written from the published hyper-parameters: vocabulary 49408 (BPE), context 77, width 512,
12 layers, 8 heads, causal self-attention:

  token embedding + learned positions (first n of 77)
  12 pre-LN residual blocks: x + attn(ln_1(x)) (fused in-projection 512->1536 with bias, causal
     mask -inf above the diagonal, out-projection), x + mlp(ln_2(x)) (512->2048, QuickGELU
     x*sigmoid(1.702x), 2048->512)
  ln_final -> last_hidden_state [batch, n, 512]
  pooled: the state at each row's argmax token id (the EOT token has the largest id in CLIP's
     vocabulary), times text_projection (512x512, no bias) -> text_embeds [batch, 512]
About 63.4M parameters. input_ids [batch, seq] has dynamic batch and sequence (seq <= 77; CLIP's
tokenizer pads to 77, the default spec uses 32 to keep tests fast).

Weights: CLIP's init from torch.manual_seed(0): token embedding N(0, 0.02), positions N(0, 0.01),
attention in-projection N(0, width^-0.5), out-projection and c_proj N(0, (2*layers)^-0.5 *
width^-0.5), c_fc N(0, (2*width)^-0.5), text_projection N(0, width^-0.5); Linear biases N(0, 0.02)
(CLIP starts them at zero; random ones exercise every bias add); LayerNorm gains 1 + N(0, 0.05),
biases N(0, 0.02).
"""
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from make_zoo import InputSpec, ZooModel

VOCAB = 49408
CONTEXT = 77
WIDTH = 512
LAYERS = 12
HEADS = 8
EMBED = 512


def randomize_layernorms(model):
    """Trained LayerNorm gains/biases are not exactly (1, 0); distinct values also keep the exporter
    from merging identical initializers behind Identity nodes."""
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            nn.init.normal_(m.weight, 1.0, 0.05)
            nn.init.normal_(m.bias, 0.0, 0.02)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(WIDTH)
        self.in_proj = nn.Linear(WIDTH, 3 * WIDTH)
        self.out_proj = nn.Linear(WIDTH, WIDTH)
        self.ln_2 = nn.LayerNorm(WIDTH)
        self.c_fc = nn.Linear(WIDTH, 4 * WIDTH)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(4 * WIDTH, WIDTH)

    def attn(self, x, mask):
        b, n = x.shape[0], x.shape[1]
        dh = WIDTH // HEADS
        q, k, v = self.in_proj(x).reshape(b, n, 3, HEADS, dh).permute(2, 0, 3, 1, 4).unbind(0)
        s = torch.matmul(q, k.transpose(-1, -2)) * dh ** -0.5 + mask
        o = torch.matmul(F.softmax(s, dim=-1), v).transpose(1, 2).reshape(b, n, WIDTH)
        return self.out_proj(o)

    def forward(self, x, mask):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.c_proj(self.gelu(self.c_fc(self.ln_2(x))))


class ClipText(nn.Module):
    def __init__(self):
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB, WIDTH)
        self.positional_embedding = nn.Parameter(torch.empty(CONTEXT, WIDTH))
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.ln_final = nn.LayerNorm(WIDTH)
        self.text_projection = nn.Parameter(torch.empty(WIDTH, EMBED))
        self.register_buffer("mask", torch.full((CONTEXT, CONTEXT), float("-inf")).triu(1))
        self._init()

    def _init(self):
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = (2 * LAYERS) ** -0.5 * WIDTH ** -0.5
        for b in self.blocks:
            nn.init.normal_(b.in_proj.weight, std=WIDTH ** -0.5)
            nn.init.normal_(b.out_proj.weight, std=proj_std)
            nn.init.normal_(b.c_fc.weight, std=(2 * WIDTH) ** -0.5)
            nn.init.normal_(b.c_proj.weight, std=proj_std)
            for lin in (b.in_proj, b.out_proj, b.c_fc, b.c_proj):
                nn.init.normal_(lin.bias, std=0.02)
        nn.init.normal_(self.text_projection, std=WIDTH ** -0.5)
        randomize_layernorms(self)

    def forward(self, input_ids):
        n = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.positional_embedding[:n]
        mask = self.mask[:n, :n]
        for b in self.blocks:
            x = b(x, mask)
        x = self.ln_final(x)
        # Row b's state at its argmax token: row b * n + argmax of the flattened [batch * n, width].
        b = x.shape[0]
        flat = torch.arange(b, dtype=torch.int64) * n + input_ids.argmax(dim=-1)
        pooled = x.reshape(-1, WIDTH)[flat]
        return torch.matmul(pooled, self.text_projection), x


def build(path: pathlib.Path):
    torch.manual_seed(0)
    model = ClipText().eval()
    ids = torch.randint(0, VOCAB, (2, 16))
    with torch.no_grad():
        torch.onnx.export(model, (ids,), str(path), opset_version=17, input_names=["input_ids"],
                          output_names=["text_embeds", "last_hidden_state"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                        "text_embeds": {0: "batch"},
                                        "last_hidden_state": {0: "batch", 1: "seq"}},
                          do_constant_folding=True)


MODELS = [
    ZooModel("clip_text", build, [InputSpec("input_ids", "int64", [1, 32], 0, VOCAB)],
             {"architecture": "CLIP ViT-B/32 text transformer: width 512, 12 layers, 8 heads, "
                              "QuickGELU, causal mask, pooled at argmax token, projection 512->512",
              "dynamic_axes": "input_ids[0]=batch, input_ids[1]=seq (<= 77)",
              "outputs": "text_embeds [batch,512], last_hidden_state [batch,seq,512]"}),
]
