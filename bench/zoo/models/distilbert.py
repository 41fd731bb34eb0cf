"""DistilBERT-base (Sanh et al., 2019) with the SST-2 sentiment head.

Written from the published hyper-parameters: vocabulary 30522 (WordPiece), 512 positions,
dim 768, 6 layers, 12 heads, FFN 3072 with exact GELU, post-LN (LayerNorm eps 1e-12):

  embeddings   word + learned position (no token types), LayerNorm
  6 blocks     sa = out_lin(attention(q_lin, k_lin, v_lin)), masked where attention_mask == 0
               (score set to the float32 minimum), x = LN(sa + x);
               x = LN(lin2(gelu(lin1(x))) + x)
  SST-2 head   [CLS] state (position 0) -> pre_classifier 768->768 -> ReLU -> classifier 768->2
About 67.0M parameters. input_ids and attention_mask [batch, seq] have dynamic batch and sequence
(seq <= 512).

Weights: BERT's init from torch.manual_seed(0): Linear and Embedding N(0, 0.02); Linear biases
N(0, 0.02) (BERT starts them at zero; random ones exercise every bias add); LayerNorm gains
1 + N(0, 0.05), biases N(0, 0.02).
"""
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from make_zoo import InputSpec, ZooModel

VOCAB = 30522
MAX_POS = 512
DIM = 768
LAYERS = 6
HEADS = 12
HIDDEN = 3072
EPS = 1e-12


def randomize_layernorms(model):
    """Trained LayerNorm gains/biases are not exactly (1, 0); distinct values also keep the exporter
    from merging identical initializers behind Identity nodes."""
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            nn.init.normal_(m.weight, 1.0, 0.05)
            nn.init.normal_(m.bias, 0.0, 0.02)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_lin = nn.Linear(DIM, DIM)
        self.k_lin = nn.Linear(DIM, DIM)
        self.v_lin = nn.Linear(DIM, DIM)
        self.out_lin = nn.Linear(DIM, DIM)
        self.sa_layer_norm = nn.LayerNorm(DIM, eps=EPS)
        self.lin1 = nn.Linear(DIM, HIDDEN)
        self.lin2 = nn.Linear(HIDDEN, DIM)
        self.output_layer_norm = nn.LayerNorm(DIM, eps=EPS)

    def attention(self, x, masked):
        b, n = x.shape[0], x.shape[1]
        dh = DIM // HEADS

        def heads(t):
            return t.reshape(b, n, HEADS, dh).transpose(1, 2)

        q = heads(self.q_lin(x)) * dh ** -0.5
        s = torch.matmul(q, heads(self.k_lin(x)).transpose(-1, -2))
        s = s.masked_fill(masked, torch.finfo(torch.float32).min)
        o = torch.matmul(F.softmax(s, dim=-1), heads(self.v_lin(x)))
        return self.out_lin(o.transpose(1, 2).reshape(b, n, DIM))

    def forward(self, x, masked):
        x = self.sa_layer_norm(self.attention(x, masked) + x)
        return self.output_layer_norm(self.lin2(F.gelu(self.lin1(x))) + x)


class DistilBertSst2(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, DIM)
        self.position_embeddings = nn.Embedding(MAX_POS, DIM)
        self.embed_layer_norm = nn.LayerNorm(DIM, eps=EPS)
        self.layers = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.pre_classifier = nn.Linear(DIM, DIM)
        self.classifier = nn.Linear(DIM, 2)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.bias, std=0.02)
        randomize_layernorms(self)

    def forward(self, input_ids, attention_mask):
        n = input_ids.shape[1]
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:n]
        x = self.embed_layer_norm(x)
        masked = (attention_mask == 0)[:, None, None, :]  # [batch, 1, 1, seq]
        for layer in self.layers:
            x = layer(x, masked)
        h = F.relu(self.pre_classifier(x[:, 0]))
        return self.classifier(h)


def build(path: pathlib.Path):
    torch.manual_seed(0)
    model = DistilBertSst2().eval()
    ids = torch.randint(0, VOCAB, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(model, (ids, mask), str(path), opset_version=17,
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                        "attention_mask": {0: "batch", 1: "seq"},
                                        "logits": {0: "batch"}},
                          do_constant_folding=True)


MODELS = [
    ZooModel("distilbert_sst2", build,
             [InputSpec("input_ids", "int64", [1, 32], 0, VOCAB),
              InputSpec("attention_mask", "int64", [1, 32], 0, 2)],
             {"architecture": "DistilBERT-base: dim 768, 6 post-LN layers, 12 heads, FFN 3072 GELU; "
                              "SST-2 head pre_classifier 768->768 + ReLU + classifier 768->2 on [CLS]",
              "dynamic_axes": "input_ids/attention_mask [batch, seq] (seq <= 512)",
              "attention_mask": "random 0/1 in the spec so the masking path is exercised",
              "output": "logits [batch, 2]"}),
]
