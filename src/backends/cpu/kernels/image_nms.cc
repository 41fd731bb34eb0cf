// NonMaxSuppression (opset 10, 11): greedy per (batch, class) suppression by
// IoU, candidates in descending score order (ties: lower box index first).
// The output [num_selected, 3] int64 has a data-dependent shape.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backends/cpu/kernels/image_util.h"
#include "ops/kernel.h"
#include "ops/shape_util.h"

namespace parallax {
namespace image {
namespace {

struct Box {
  float y1, x1, y2, x2, area;
};

// Boxes normalised to (min, max) corners whatever the input layout.
std::vector<Box> ToBoxes(const double* b, int64_t n, bool center) {
  std::vector<Box> boxes(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double* p = b + 4 * i;
    double y1, x1, y2, x2;
    if (center) {  // [x_center, y_center, width, height]
      x1 = p[0] - p[2] / 2;
      x2 = p[0] + p[2] / 2;
      y1 = p[1] - p[3] / 2;
      y2 = p[1] + p[3] / 2;
    } else {  // [y1, x1, y2, x2], either corner order
      y1 = std::min(p[0], p[2]);
      y2 = std::max(p[0], p[2]);
      x1 = std::min(p[1], p[3]);
      x2 = std::max(p[1], p[3]);
    }
    Box& bx = boxes[static_cast<size_t>(i)];
    bx.y1 = static_cast<float>(y1);
    bx.x1 = static_cast<float>(x1);
    bx.y2 = static_cast<float>(y2);
    bx.x2 = static_cast<float>(x2);
    bx.area = (bx.y2 - bx.y1) * (bx.x2 - bx.x1);
  }
  return boxes;
}

bool Suppresses(const Box& a, const Box& b, float iou_threshold) {
  const float ix1 = std::max(a.x1, b.x1);
  const float iy1 = std::max(a.y1, b.y1);
  const float ix2 = std::min(a.x2, b.x2);
  const float iy2 = std::min(a.y2, b.y2);
  if (ix2 <= ix1 || iy2 <= iy1) return false;
  if (a.area <= 0 || b.area <= 0) return false;
  const float inter = (ix2 - ix1) * (iy2 - iy1);
  const float uni = a.area + b.area - inter;
  if (uni <= 0) return false;
  return inter / uni > iou_threshold;
}

struct Options {
  int64_t max_per_class = 0;
  float iou_threshold = 0;
  bool has_score_threshold = false;
  float score_threshold = 0;
};

Result<Options> ReadOptions(const KernelContext& ctx) {
  Options o;
  auto present = [&](int i) { return ctx.has_input(i) && ctx.input(i).numel() > 0; };
  if (present(2)) {
    Result<std::vector<int64_t>> v = ReadInt64s(ctx.input(2));
    if (!v.ok()) return ctx.Error("max_output_boxes_per_class: " + v.status().message());
    o.max_per_class = std::max<int64_t>(0, (*v)[0]);
  }
  if (present(3)) {
    Result<std::vector<double>> v = ReadDoubles(ctx.input(3));
    if (!v.ok()) return ctx.Error("iou_threshold: " + v.status().message());
    o.iou_threshold = static_cast<float>((*v)[0]);
    if (!(o.iou_threshold >= 0 && o.iou_threshold <= 1)) {
      return ctx.Error("iou_threshold must be in [0, 1], got " + std::to_string(o.iou_threshold));
    }
  }
  if (present(4)) {
    Result<std::vector<double>> v = ReadDoubles(ctx.input(4));
    if (!v.ok()) return ctx.Error("score_threshold: " + v.status().message());
    o.has_score_threshold = true;
    o.score_threshold = static_cast<float>((*v)[0]);
  }
  return o;
}

Status NonMaxSuppression(KernelContext& ctx) {
  if (!ctx.has_input(1)) return ctx.Error("missing scores input");
  const Tensor& boxes_t = ctx.input(0);
  const Tensor& scores_t = ctx.input(1);
  if (boxes_t.rank() != 3 || boxes_t.dim(2) != 4) {
    return ctx.Error("boxes must be [batch, boxes, 4], got " + ShapeToString(boxes_t.shape()));
  }
  if (scores_t.rank() != 3 || scores_t.dim(0) != boxes_t.dim(0) ||
      scores_t.dim(2) != boxes_t.dim(1)) {
    return ctx.Error("scores " + ShapeToString(scores_t.shape()) +
                     " must be [batch, classes, boxes] for boxes " +
                     ShapeToString(boxes_t.shape()));
  }
  PX_ASSIGN_OR_RETURN(Options opt, ReadOptions(ctx));
  Result<std::vector<double>> boxes_v = ReadDoubles(boxes_t);
  if (!boxes_v.ok()) return ctx.Error("boxes: " + boxes_v.status().message());
  // Scores are compared as float: read float32 in place (a detector's are
  // [1, 80, 8400]), convert other types once.
  std::vector<float> converted;
  const float* scores = nullptr;
  if (scores_t.dtype() == DType::kFloat32) {
    scores = scores_t.data<float>();
  } else {
    Result<std::vector<double>> v = ReadDoubles(scores_t);
    if (!v.ok()) return ctx.Error("scores: " + v.status().message());
    converted.assign(v->begin(), v->end());
    scores = converted.data();
  }
  const int64_t batches = boxes_t.dim(0), n = boxes_t.dim(1), classes = scores_t.dim(1);
  const bool center = ctx.node().attr_int("center_point_box", 0) != 0;
  std::vector<int64_t> selected;  // Triples (batch, class, box).
  std::vector<int64_t> order;
  std::vector<int64_t> kept;
  for (int64_t b = 0; b < batches && opt.max_per_class > 0; ++b) {
    const std::vector<Box> boxes = ToBoxes(boxes_v->data() + b * n * 4, n, center);
    for (int64_t c = 0; c < classes; ++c) {
      const float* sc = scores + (b * classes + c) * n;
      order.clear();
      for (int64_t i = 0; i < n; ++i) {
        if (!opt.has_score_threshold || sc[i] > opt.score_threshold) order.push_back(i);
      }
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t i, int64_t j) { return sc[i] > sc[j]; });
      kept.clear();
      for (int64_t i : order) {
        if (static_cast<int64_t>(kept.size()) >= opt.max_per_class) break;
        bool keep = true;
        for (int64_t k : kept) {
          if (Suppresses(boxes[static_cast<size_t>(k)], boxes[static_cast<size_t>(i)],
                         opt.iou_threshold)) {
            keep = false;
            break;
          }
        }
        if (!keep) continue;
        kept.push_back(i);
        selected.insert(selected.end(), {b, c, i});
      }
    }
  }
  const int64_t count = static_cast<int64_t>(selected.size() / 3);
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt64, Shape{count, 3}));
  std::copy(selected.begin(), selected.end(), out->data<int64_t>());
  return Status::Ok();
}

}  // namespace

void RegisterNmsOps(OpRegistry& r) { r.Register("NonMaxSuppression", NonMaxSuppression); }

}  // namespace image
}  // namespace parallax
