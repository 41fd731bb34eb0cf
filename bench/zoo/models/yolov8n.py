"""YOLOv8n (Ultralytics, 2023) at 640x640 with its full post-processing in the graph.

Written from the published architecture description (depth multiple 0.33, width multiple 0.25):

  backbone  Conv(3,16,3,s2) Conv(16,32,3,s2) C2f(32,n=1,shortcut) Conv(32,64,3,s2) C2f(64,n=2)
            Conv(64,128,3,s2) C2f(128,n=2) Conv(128,256,3,s2) C2f(256,n=1) SPPF(256,k=5)
  neck      PAN-FPN: Upsample(nearest x2) + Concat + C2f(shortcut=False), top-down then bottom-up
            with Conv(3,s2) downsampling; outputs P3/8 (64 ch), P4/16 (128 ch), P5/32 (256 ch)
  head      decoupled Detect: per level a box branch Conv3-Conv3-Conv1(4*reg_max) and a class branch
            Conv3-Conv3-Conv1(80); DFL (softmax over reg_max=16 bins, 1x1 conv with arange weights)
  decode    anchor points (cell centres), dist2bbox -> xywh in pixels, sigmoid class scores
  NMS       ONNX NonMaxSuppression (per class, IoU 0.7, score 0.25, at most 100 boxes per class),
            then Gather of the selected boxes, scores and classes (data-dependent first dimension).

Conv = Conv2d(bias=False) + BatchNorm2d(eps=1e-3) + SiLU. About 3.15M parameters.

Weights (random, deterministic): PyTorch's default init from torch.manual_seed(0) with BatchNorm
gamma 0.25, then calibrated on four seeded uniform-noise images: (1) BatchNorm running statistics from
train-mode passes, so every layer keeps a controlled scale; (2) each level's last box and class 1x1
convolution rescaled to unit-std logits (DFL distributions neither flat nor one-hot); (3) the class
bias (Ultralytics' bias_init sets the prior log(5 / 80 / (640 / stride)^2), about -11.5, which no
random-weight score would pass) set to the logit at which a fraction 3e-5 of (class, anchor) pairs
scores above 0.25. On uniform-noise inputs (numpy seeds 0-9) 11 to 53 boxes survive NMS. With
gamma 1 the random network is chaotic: the count swings from 0 to thousands between noise images.
"""
import math
import pathlib
import warnings

import torch
import torch.nn as nn

from make_zoo import InputSpec, ZooModel

NC = 80
REG_MAX = 16
STRIDES = (8, 16, 32)
IOU_THRESHOLD = 0.7
SCORE_THRESHOLD = 0.25
MAX_PER_CLASS = 100
# Random-weight calibration (see the module docstring). BN_GAMMA < 1 keeps the random network out of
# its chaotic regime, where per-image statistics (and the box count) swing by orders of magnitude
# from one noise image to the next. CLS_PASS: fraction of (class, anchor) pairs above the score
# threshold on the calibration images (3e-5 of 672,000 pairs: about 20 before NMS).
BN_GAMMA = 0.25
CLS_PASS = 3e-5


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=None)  # momentum=None: cumulative average.
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True):
        super().__init__()
        self.cv1 = Conv(c1, c2, 3)
        self.cv2 = Conv(c2, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP bottleneck with 2 convolutions: split in two halves, chain n bottlenecks on the second
    half, concatenate every intermediate result."""

    def __init__(self, c1, c2, n=1, shortcut=False, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class DFL(nn.Module):
    """Distribution focal loss integral: expected value of a softmax over reg_max bins."""

    def __init__(self, c1=REG_MAX):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1)
        self.c1 = c1

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def make_anchors(sizes, strides, offset=0.5):
    points, stride_t = [], []
    for (h, w), s in zip(sizes, strides):
        sy, sx = torch.meshgrid(torch.arange(h) + offset, torch.arange(w) + offset, indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_t.append(torch.full((h * w, 1), float(s)))
    return torch.cat(points).float(), torch.cat(stride_t).float()


def dist2bbox(distance, anchor_points, dim=1):
    lt, rb = distance.chunk(2, dim)
    x1y1 = anchor_points - lt
    x2y2 = anchor_points + rb
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim)  # xywh


class Detect(nn.Module):
    def __init__(self, nc, ch, img_size):
        super().__init__()
        self.nc, self.no = nc, nc + 4 * REG_MAX
        c2, c3 = max(16, ch[0] // 4, REG_MAX * 4), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * REG_MAX, 1)) for x in ch)
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        self.dfl = DFL(REG_MAX)
        sizes = [(img_size // s, img_size // s) for s in STRIDES]
        anchors, strides = make_anchors(sizes, STRIDES)
        self.register_buffer("anchors", anchors.transpose(0, 1).contiguous())  # [2, A]
        self.register_buffer("strides", strides.transpose(0, 1).contiguous())  # [1, A]

    def bias_init(self, cls_prior=None):
        for a, b, s in zip(self.cv2, self.cv3, STRIDES):
            a[-1].bias.data[:] = 1.0
            b[-1].bias.data[:] = math.log(5 / self.nc / (640 / s) ** 2) if cls_prior is None else cls_prior

    def raw(self, xs):
        b = xs[0].shape[0]
        return torch.cat([torch.cat((self.cv2[i](xi), self.cv3[i](xi)), 1).view(b, self.no, -1)
                          for i, xi in enumerate(xs)], 2)

    def forward(self, xs):
        box, cls = self.raw(xs).split((4 * REG_MAX, self.nc), 1)
        dbox = dist2bbox(self.dfl(box), self.anchors.unsqueeze(0), dim=1) * self.strides
        return dbox, cls.sigmoid()  # [B, 4, A] xywh pixels, [B, nc, A]


class NonMaxSuppression(torch.autograd.Function):
    """ONNX NonMaxSuppression (center_point_box=1: boxes are xywh). The eager forward computes the
    same selection (per-class greedy NMS) so the PyTorch model can be compared with the export."""

    @staticmethod
    def forward(ctx, boxes, scores, max_per_class, iou_threshold, score_threshold):
        # boxes [B, N, 4] xywh, scores [B, C, N] -> selected [K, 3] (batch, class, box), int64.
        out = []
        xyxy = torch.cat((boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2), -1)
        area = (xyxy[..., 2] - xyxy[..., 0]) * (xyxy[..., 3] - xyxy[..., 1])
        for bi in range(scores.shape[0]):
            for ci in range(scores.shape[1]):
                s = scores[bi, ci]
                cand = torch.nonzero(s > score_threshold).flatten()
                cand = cand[torch.argsort(s[cand], descending=True, stable=True)]
                keep = []
                for j in cand.tolist():
                    if len(keep) >= int(max_per_class):
                        break
                    if keep:
                        k = torch.tensor(keep)
                        lt = torch.maximum(xyxy[bi, k, :2], xyxy[bi, j, :2])
                        rb = torch.minimum(xyxy[bi, k, 2:], xyxy[bi, j, 2:])
                        inter = (rb - lt).clamp(min=0).prod(-1)
                        iou = inter / (area[bi, k] + area[bi, j] - inter)
                        if bool((iou > iou_threshold).any()):
                            continue
                    keep.append(j)
                out += [[bi, ci, j] for j in keep]
        return torch.tensor(out, dtype=torch.int64).view(-1, 3)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou_threshold, score_threshold):
        mo = g.op("Constant", value_t=torch.tensor([max_per_class], dtype=torch.int64))
        iou = g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float))
        sc = g.op("Constant", value_t=torch.tensor([score_threshold], dtype=torch.float))
        return g.op("NonMaxSuppression", boxes, scores, mo, iou, sc, center_point_box_i=1)


class YOLOv8n(nn.Module):
    def __init__(self, nc=NC, img_size=640):
        super().__init__()
        w = lambda c: c // 4  # width multiple 0.25 on the YOLOv8 base widths.
        # Backbone.
        self.b0 = Conv(3, w(64), 3, 2)
        self.b1 = Conv(w(64), w(128), 3, 2)
        self.b2 = C2f(w(128), w(128), 1, True)
        self.b3 = Conv(w(128), w(256), 3, 2)
        self.b4 = C2f(w(256), w(256), 2, True)
        self.b5 = Conv(w(256), w(512), 3, 2)
        self.b6 = C2f(w(512), w(512), 2, True)
        self.b7 = Conv(w(512), w(1024), 3, 2)
        self.b8 = C2f(w(1024), w(1024), 1, True)
        self.b9 = SPPF(w(1024), w(1024), 5)
        # Neck (PAN-FPN).
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.h12 = C2f(w(1024) + w(512), w(512), 1)
        self.h15 = C2f(w(512) + w(256), w(256), 1)
        self.h16 = Conv(w(256), w(256), 3, 2)
        self.h18 = C2f(w(256) + w(512), w(512), 1)
        self.h19 = Conv(w(512), w(512), 3, 2)
        self.h21 = C2f(w(512) + w(1024), w(1024), 1)
        self.detect = Detect(nc, (w(256), w(512), w(1024)), img_size)

    def neck(self, x):
        x = self.b2(self.b1(self.b0(x)))
        p3 = self.b4(self.b3(x))
        p4 = self.b6(self.b5(p3))
        p5 = self.b9(self.b8(self.b7(p4)))
        h12 = self.h12(torch.cat((self.up(p5), p4), 1))
        h15 = self.h15(torch.cat((self.up(h12), p3), 1))
        h18 = self.h18(torch.cat((self.h16(h15), h12), 1))
        h21 = self.h21(torch.cat((self.h19(h18), p5), 1))
        return [h15, h18, h21]

    def features(self, x):
        return self.detect(self.neck(x))

    def forward(self, images):
        boxes, scores = self.features(images)  # [1, 4, A], [1, nc, A]
        boxes_t = boxes.transpose(1, 2)  # [1, A, 4]
        sel = NonMaxSuppression.apply(boxes_t, scores, MAX_PER_CLASS, IOU_THRESHOLD, SCORE_THRESHOLD)
        cls_idx, box_idx = sel[:, 1], sel[:, 2]
        out_boxes = boxes_t[0].index_select(0, box_idx)  # [K, 4] xywh
        flat = cls_idx * scores.shape[2] + box_idx
        out_scores = scores[0].reshape(-1).index_select(0, flat)  # [K]
        return out_boxes, out_scores, cls_idx


def build_model(img_size=640):
    torch.manual_seed(0)
    model = YOLOv8n(NC, img_size)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(BN_GAMMA)
    model.detect.bias_init(0.0)
    gen = torch.Generator().manual_seed(1)
    calib = [torch.rand(2, 3, img_size, img_size, generator=gen) for _ in range(2)]
    with torch.no_grad():
        # 1. BatchNorm running statistics: cumulative average over the calibration batches.
        model.train()
        for x in calib:
            model.detect.raw(model.neck(x))
        model.eval()
        # 2. Scale each level's last box / class convolution to unit-std logits on the same images,
        #    and set the class prior so that a fraction CLS_PASS of (class, anchor) pairs pass.
        feats = [model.neck(x) for x in calib]
        cls_logits = []
        for i, det in enumerate((model.detect.cv2, model.detect.cv3)):
            for lvl, branch in enumerate(det):
                y = torch.cat([branch(f[lvl]).flatten(2) for f in feats], 2)
                branch[-1].weight.data /= y.std()
                if i == 1:
                    cls_logits.append(torch.cat([branch(f[lvl]).flatten() for f in feats]))
        cls = torch.cat(cls_logits)
        k = max(1, int(CLS_PASS * cls.numel()))
        kth = cls.topk(k).values[-1].item()
        prior = math.log(SCORE_THRESHOLD / (1 - SCORE_THRESHOLD)) - kth
        for branch in model.detect.cv3:
            branch[-1].bias.data[:] = prior
    return model


def build(path: pathlib.Path):
    model = build_model()
    x = torch.rand(1, 3, 640, 640, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model, (x,), str(path), opset_version=17, input_names=["images"],
                          output_names=["boxes", "scores", "classes"],
                          dynamic_axes={"boxes": {0: "num_boxes"}, "scores": {0: "num_boxes"},
                                        "classes": {0: "num_boxes"}},
                          do_constant_folding=True)


MODELS = [
    ZooModel("yolov8n", build, [InputSpec("images", "float32", [1, 3, 640, 640], 0.0, 1.0)], {
        "source": "YOLOv8n (Ultralytics 2023), depth 0.33 / width 0.25, 80 classes, reg_max 16",
        "postprocess": "DFL + dist2bbox (xywh) + sigmoid + NonMaxSuppression (IoU 0.7, score 0.25, "
                       "100 per class) + Gather; outputs have a data-dependent first dimension",
        "outputs": "boxes [K,4] xywh pixels, scores [K], classes [K] int64",
        "weights": "torch.manual_seed(0); BatchNorm stats calibrated on seeded random images; "
                   f"BN gamma {BN_GAMMA}, class prior set so {CLS_PASS:g} of pairs pass on calibration images",
    }),
]
