"""Whisper-Tiny (Radford et al., 2022): the audio encoder and a greedy text decoder as an ONNX Loop.

Written from the published hyper-parameters (tiny: d_model 384, 4 encoder + 4 decoder layers,
6 heads, FFN 1536, vocabulary 51865, 80 mel bins, 1500 audio positions, 448 text positions):

  encoder  Conv1d(80->384, k3, p1) + GELU, Conv1d(384->384, k3, s2, p1) + GELU  (3000 -> 1500 frames)
           + sinusoidal positions (sin | cos halves, timescales 1..10000), 4 pre-LN blocks
           (self-attention, MLP 384-1536-384 with exact GELU), final LayerNorm
  decoder  token embedding + learned positions (448), 4 pre-LN blocks (causal self-attention,
           cross-attention on the encoder states, MLP), final LayerNorm, logits through the
           transposed token embedding (tied output projection)
Attention: query/value/out projections with bias, key projection without bias (as in Whisper).
About 7.6M (encoder) + 29.6M (decoder) parameters.

whisper_tiny_decoder is greedy decoding in one graph: the cross-attention keys/values of the four
layers are computed once from the encoder states (outside the loop, as every Whisper decoder
caches them), then an ONNX Loop (trip count min(max_tokens, 448 - start length)) runs the decoder
on all the tokens so far (no self-attention KV cache: each iteration recomputes the prefix, which
keeps the body a plain decoder forward), takes the argmax of the last position's logits, appends it
and stops when it is the end token 50257. The loop-carried value is the token sequence [1, n];
with random weights the end token is rare, so it usually runs max_tokens iterations.
The Loop is assembled with onnx.helper from two torch.onnx exports (the cross-K/V projections and
one decoder step); the body reads the step's weights and the cross K/V as outer-scope values.

Weights: PyTorch's default init from torch.manual_seed(0) (Linear/Conv uniform); the token embedding
and the decoder's learned positions N(0, 0.02); LayerNorm gains 1 + N(0, 0.05), biases N(0, 0.02).
(With N(0, 1) token embeddings the tied projection is dominated by the input token's own embedding
and greedy decoding only repeats the last start token; at 0.02 it emits varied tokens.)
"""
import math
import pathlib
import tempfile

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper

from make_zoo import InputSpec, ZooModel

N_MELS = 80
N_AUDIO_CTX = 1500
N_TEXT_CTX = 448
D_MODEL = 384
N_HEAD = 6
N_LAYER = 4
D_FF = 1536
N_VOCAB = 51865
EOT = 50257
SOT_SEQUENCE = [50258, 50259, 50359, 50363]  # <|startoftranscript|><|en|><|transcribe|><|notimestamps|>
DEFAULT_MAX_TOKENS = 16


def sinusoids(length, channels, max_timescale=10000.0):
    """Positions x timescales (geometric from 1 to max_timescale), sin half then cos half."""
    half = channels // 2
    inv = torch.exp(-math.log(max_timescale) / (half - 1) * torch.arange(half, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def randomize_layernorms(model):
    """Trained LayerNorm gains/biases are not exactly (1, 0); distinct values also keep the exporter
    from merging identical initializers behind Identity nodes."""
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            nn.init.normal_(m.weight, 1.0, 0.05)
            nn.init.normal_(m.bias, 0.0, 0.02)


def split_heads(x):  # [B, T, D] -> [B, H, T, D/H]
    return x.reshape(x.shape[0], x.shape[1], N_HEAD, D_MODEL // N_HEAD).transpose(1, 2)


def attend(q, k_t, v, mask=None):
    """q [B,H,Tq,dh], k_t [B,H,dh,Tk], v [B,H,Tk,dh] -> [B,Tq,D]."""
    s = torch.matmul(q, k_t) * (D_MODEL // N_HEAD) ** -0.5
    if mask is not None:
        s = s + mask
    o = torch.matmul(F.softmax(s, dim=-1), v)
    return o.transpose(1, 2).reshape(o.shape[0], o.shape[2], D_MODEL)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(D_MODEL, D_MODEL)
        self.key = nn.Linear(D_MODEL, D_MODEL, bias=False)
        self.value = nn.Linear(D_MODEL, D_MODEL)
        self.out = nn.Linear(D_MODEL, D_MODEL)

    def kv(self, x):  # keys pre-transposed for q @ k
        return split_heads(self.key(x)).transpose(2, 3), split_heads(self.value(x))

    def forward(self, x, mask=None, kv=None):
        k_t, v = self.kv(x) if kv is None else kv
        return self.out(attend(split_heads(self.query(x)), k_t, v, mask))


class Block(nn.Module):
    def __init__(self, cross):
        super().__init__()
        self.attn_ln = nn.LayerNorm(D_MODEL)
        self.attn = Attention()
        self.cross_attn_ln = nn.LayerNorm(D_MODEL) if cross else None
        self.cross_attn = Attention() if cross else None
        self.mlp_ln = nn.LayerNorm(D_MODEL)
        self.mlp = nn.Sequential(nn.Linear(D_MODEL, D_FF), nn.GELU(), nn.Linear(D_FF, D_MODEL))

    def forward(self, x, mask=None, cross_kv=None):
        x = x + self.attn(self.attn_ln(x), mask)
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.cross_attn_ln(x), kv=cross_kv)
        return x + self.mlp(self.mlp_ln(x))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(N_MELS, D_MODEL, 3, padding=1)
        self.conv2 = nn.Conv1d(D_MODEL, D_MODEL, 3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(N_AUDIO_CTX, D_MODEL))
        self.blocks = nn.ModuleList([Block(cross=False) for _ in range(N_LAYER)])
        self.ln_post = nn.LayerNorm(D_MODEL)

    def forward(self, mel):  # [1, 80, 3000]
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        x = x + self.positional_embedding
        for b in self.blocks:
            x = b(x)
        return self.ln_post(x)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.token_embedding = nn.Embedding(N_VOCAB, D_MODEL)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.positional_embedding = nn.Parameter(torch.randn(N_TEXT_CTX, D_MODEL) * 0.02)
        self.blocks = nn.ModuleList([Block(cross=True) for _ in range(N_LAYER)])
        self.ln = nn.LayerNorm(D_MODEL)
        self.register_buffer("mask", torch.full((N_TEXT_CTX, N_TEXT_CTX), float("-inf")).triu(1))

    def cross_kv(self, enc):
        return [b.cross_attn.kv(enc) for b in self.blocks]

    def last_logits(self, tokens, cross_kv):  # tokens [1, n] -> logits of the last position [1, V]
        n = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:n]
        mask = self.mask[:n, :n]
        for b, kv in zip(self.blocks, cross_kv):
            x = b(x, mask, kv)
        x = self.ln(x[:, -1])
        # Tied projection as W @ x: the exported MatMul reads the embedding table itself (x @ W^T
        # would constant-fold into a second, transposed copy of the 80 MB table).
        return torch.matmul(self.token_embedding.weight, x.unsqueeze(-1)).squeeze(-1)

    def greedy(self, enc, tokens, max_tokens):  # the PyTorch reference of the ONNX Loop
        kv = self.cross_kv(enc)
        for _ in range(min(max_tokens, N_TEXT_CTX - tokens.shape[1])):
            nxt = self.last_logits(tokens, kv).argmax(-1, keepdim=True)
            tokens = torch.cat([tokens, nxt], dim=1)
            if int(nxt) == EOT:
                break
        return tokens


class CrossKV(nn.Module):
    def __init__(self, dec):
        super().__init__()
        self.dec = dec

    def forward(self, enc):
        return tuple(t for kv in self.dec.cross_kv(enc) for t in kv)


class Step(nn.Module):
    def __init__(self, dec):
        super().__init__()
        self.dec = dec

    def forward(self, tokens, *flat_kv):
        kv = [(flat_kv[2 * i], flat_kv[2 * i + 1]) for i in range(N_LAYER)]
        nxt = self.dec.last_logits(tokens, kv).argmax(-1, keepdim=True)
        return torch.cat([tokens, nxt], dim=1), (nxt != EOT).reshape(())


def _build_models():
    torch.manual_seed(0)
    enc = Encoder().eval()
    dec = Decoder().eval()
    randomize_layernorms(enc)
    randomize_layernorms(dec)
    return enc, dec


def build_encoder(path: pathlib.Path):
    enc, _ = _build_models()
    mel = torch.rand(1, N_MELS, 3000) * 2 - 1
    with torch.no_grad():
        torch.onnx.export(enc, (mel,), str(path), opset_version=17, input_names=["mel"],
                          output_names=["encoder_hidden_states"], do_constant_folding=True)


def _export(module, args, input_names, output_names, dynamic_axes):
    with tempfile.TemporaryDirectory() as d:
        f = pathlib.Path(d) / "m.onnx"
        with torch.no_grad():
            torch.onnx.export(module, args, str(f), opset_version=17, input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic_axes,
                              do_constant_folding=True)
        return onnx.load(str(f))


def _rename(graph, prefix, keep):
    """Prefixes every value and node name in `graph` except those mapped in `keep` (old -> new)."""
    names = {}

    def rn(n):
        if n == "":
            return n
        if n in keep:
            return keep[n]
        return names.setdefault(n, prefix + n)

    for node in graph.node:
        node.name = prefix + (node.name or node.op_type)
        node.input[:] = [rn(n) for n in node.input]
        node.output[:] = [rn(n) for n in node.output]
    for t in graph.initializer:
        t.name = rn(t.name)
    for v in list(graph.input) + list(graph.output) + list(graph.value_info):
        v.name = rn(v.name)


def build_decoder(path: pathlib.Path):
    _, dec = _build_models()
    enc_states = torch.rand(1, N_AUDIO_CTX, D_MODEL) * 2 - 1
    kv_names = [f"cross_{kind}_{i}" for i in range(N_LAYER) for kind in ("k", "v")]
    xkv = _export(CrossKV(dec), (enc_states,), ["encoder_hidden_states"], kv_names, None)
    with torch.no_grad():
        flat_kv = CrossKV(dec)(enc_states)
    tokens = torch.tensor([SOT_SEQUENCE], dtype=torch.int64)
    step = _export(Step(dec), (tokens, *flat_kv), ["tokens"] + kv_names, ["tokens_out", "cond_out"],
                   {"tokens": {1: "n"}, "tokens_out": {1: "n_next"}})

    _rename(xkv.graph, "xkv/", {n: n for n in ["encoder_hidden_states"] + kv_names})
    _rename(step.graph, "step/", {"tokens": "body/tokens_in", "tokens_out": "body/tokens_out",
                                  "cond_out": "body/cond_out", **{n: n for n in kv_names}})

    body = helper.make_graph(
        list(step.graph.node), "greedy_step",
        [helper.make_tensor_value_info("body/iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("body/cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("body/tokens_in", TensorProto.INT64, [1, "n"])],
        [helper.make_tensor_value_info("body/cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("body/tokens_out", TensorProto.INT64, [1, "n_next"])])

    def const(name, value, dtype=TensorProto.INT64):
        return helper.make_node("Constant", [], [name], name=name,
                                value=helper.make_tensor(name, dtype, [], [value]))

    nodes = list(xkv.graph.node) + [
        const("one", 1), const("text_ctx", N_TEXT_CTX), const("cond_init", True, TensorProto.BOOL),
        helper.make_node("Shape", ["decoder_input_ids"], ["start_shape"], name="start_shape"),
        helper.make_node("Gather", ["start_shape", "one"], ["start_len"], name="start_len", axis=0),
        helper.make_node("Sub", ["text_ctx", "start_len"], ["room"], name="room"),
        helper.make_node("Min", ["max_tokens", "room"], ["trip_count"], name="trip_count"),
        helper.make_node("Loop", ["trip_count", "cond_init", "decoder_input_ids"], ["tokens"],
                         name="greedy_loop", body=body),
    ]
    graph = helper.make_graph(
        nodes, "whisper_tiny_greedy_decoder",
        [helper.make_tensor_value_info("encoder_hidden_states", TensorProto.FLOAT,
                                       [1, N_AUDIO_CTX, D_MODEL]),
         helper.make_tensor_value_info("decoder_input_ids", TensorProto.INT64, [1, "start_len"]),
         helper.make_tensor_value_info("max_tokens", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "n_tokens"])],
        initializer=list(xkv.graph.initializer) + list(step.graph.initializer))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="parallax-zoo")
    model.ir_version = xkv.ir_version
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


MODELS = [
    ZooModel("whisper_tiny_encoder", build_encoder,
             [InputSpec("mel", "float32", [1, N_MELS, 3000], -1.0, 1.0)],
             {"architecture": "Whisper-Tiny audio encoder: conv stem + 4 pre-LN blocks, d 384, 6 heads",
              "output": "encoder_hidden_states [1,1500,384]"}),
    ZooModel("whisper_tiny_decoder", build_decoder,
             [InputSpec("encoder_hidden_states", "float32", [1, N_AUDIO_CTX, D_MODEL], -1.0, 1.0),
              InputSpec("decoder_input_ids", "int64", [1, len(SOT_SEQUENCE)], 50258, 50364),
              InputSpec("max_tokens", "int64", [], DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKENS + 1)],
             {"architecture": "Whisper-Tiny text decoder, 4 pre-LN blocks (self + cross attention), "
                              "tied output projection, greedy decoding in an ONNX Loop",
              "loop": "trip count min(max_tokens, 448 - start length); stops after end token 50257; "
                      "no self-attention KV cache (each iteration recomputes the prefix); "
                      "cross-attention K/V computed once before the loop",
              "dynamic_axes": "decoder_input_ids[1] (start length), tokens[1] (start length + generated)",
              "output": "tokens int64 [1, start length + generated]"}),
]
