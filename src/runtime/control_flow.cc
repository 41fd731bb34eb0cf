// Control-flow kernels: If, Loop, Scan. Each compiles its body graphs once
// (KernelInit::compile_subgraph) and runs them through the same executor as
// the main graph. Outer-scope values reach a body as captures: the node's
// implicit inputs, mapped here to each body's capture order.
#include <cstring>

#include "backends/cpu/kernels/families.h"
#include "ops/shape_util.h"
#include "runtime/subgraph_body.h"

namespace parallax {

Result<Body> CompileBody(const KernelInit& init, const char* attr) {
  const Attribute* a = init.node.attr(attr);
  if (a == nullptr || !a->g)
    return init.Error(std::string("missing graph attribute '") + attr + "'");
  Body b;
  b.graph = a->g.get();
  PX_ASSIGN_OR_RETURN(b.runner, init.compile_subgraph(*b.graph));
  for (const auto& [outer, local] : b.graph->captures) {
    size_t pos = 0;
    while (pos < init.node.implicit_inputs.size() && init.node.implicit_inputs[pos] != outer) ++pos;
    if (pos == init.node.implicit_inputs.size())
      return Internal(init.node.Describe() + ": capture not found");
    b.capture_pos.push_back(pos);
  }
  return b;
}

std::vector<Tensor> Captures(const Body& b, const KernelContext& ctx) {
  std::vector<Tensor> caps;
  caps.reserve(b.capture_pos.size());
  for (size_t pos : b.capture_pos) caps.push_back(*ctx.implicit_inputs()[pos]);
  return caps;
}

Status RunBody(const Body& b, const KernelContext& ctx, const std::vector<Tensor>& inputs,
               const std::vector<Tensor>& captures, std::vector<Tensor>* outputs) {
  b.runner->set_free_bytes(ctx.subgraph_free_bytes());
  return b.runner->Run(inputs, captures, outputs);
}

namespace {

Result<bool> ReadBool(const Tensor& t, const KernelContext& ctx, const char* what) {
  if (t.numel() != 1)
    return ctx.Error(std::string(what) + " must have exactly one element, has shape " +
                     ShapeToString(t.shape()));
  if (t.dtype() == DType::kBool) return t.data<bool>()[0];
  PX_ASSIGN_OR_RETURN(double v, ReadScalarAsDouble(t));
  return v != 0;
}

class IfKernel : public Kernel {
 public:
  Body then_b, else_b;
  Status Run(KernelContext& ctx) override {
    if (!ctx.has_input(0)) return ctx.Error("missing condition input");
    PX_ASSIGN_OR_RETURN(bool cond, ReadBool(ctx.input(0), ctx, "If condition"));
    Body& b = cond ? then_b : else_b;
    std::vector<Tensor> outs;
    Status s = RunBody(b, ctx, {}, Captures(b, ctx), &outs);
    if (!s.ok())
      return s.WithContext(ctx.node().Describe() + (cond ? " then-branch" : " else-branch"));
    if (static_cast<int>(outs.size()) != ctx.num_outputs())
      return ctx.Error("branch produced " + std::to_string(outs.size()) + " outputs, node has " +
                       std::to_string(ctx.num_outputs()));
    for (int i = 0; i < ctx.num_outputs(); ++i)
      PX_RETURN_IF_ERROR(ctx.SetOutput(i, std::move(outs[i])));
    return Status::Ok();
  }
};

// Copies `parts` (equal shapes) into one tensor with a new axis at `axis`.
Result<Tensor> Stack(const std::vector<Tensor>& parts, int axis, DType dtype,
                     const Shape& empty_shape) {
  if (parts.empty()) return Tensor::Empty(dtype, empty_shape);
  const Shape& s = parts[0].shape();
  for (const Tensor& p : parts)
    if (p.shape() != s || p.dtype() != parts[0].dtype())
      return InvalidArgument("scan output changes shape across iterations: " + ShapeToString(s) +
                             " vs " + ShapeToString(p.shape()));
  Shape out = s;
  out.insert(out.begin() + axis, static_cast<int64_t>(parts.size()));
  Tensor t = Tensor::Uninitialized(parts[0].dtype(), out);
  const size_t es = DTypeSize(t.dtype());
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= s[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis); d < s.size(); ++d) inner *= s[d];
  const size_t chunk = static_cast<size_t>(inner) * es;
  auto* dst = static_cast<uint8_t*>(t.raw_data());
  for (int64_t o = 0; o < outer; ++o)
    for (size_t p = 0; p < parts.size(); ++p)
      std::memcpy(dst + (static_cast<size_t>(o) * parts.size() + p) * chunk,
                  static_cast<const uint8_t*>(parts[p].raw_data()) + static_cast<size_t>(o) * chunk,
                  chunk);
  return t;
}

// Slice `index` along `axis`, with that axis removed.
Tensor SliceAxis(const Tensor& t, int axis, int64_t index) {
  Shape s = t.shape();
  const int64_t len = s[static_cast<size_t>(axis)];
  s.erase(s.begin() + axis);
  Tensor out = Tensor::Uninitialized(t.dtype(), s);
  const size_t es = DTypeSize(t.dtype());
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= t.shape()[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < t.shape().size(); ++d) inner *= t.shape()[d];
  const size_t chunk = static_cast<size_t>(inner) * es;
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(
        static_cast<uint8_t*>(out.raw_data()) + static_cast<size_t>(o) * chunk,
        static_cast<const uint8_t*>(t.raw_data()) + static_cast<size_t>(o * len + index) * chunk,
        chunk);
  return out;
}

class LoopKernel : public Kernel {
 public:
  Body body;
  // Per node output: its shape after zero iterations ([0, ...] for scans),
  // from the declared outer shape, else the body output's.
  std::vector<Shape> empty_shapes;
  Status Run(KernelContext& ctx) override {
    const Graph& g = *body.graph;
    const int n_carried = ctx.num_inputs() - 2;
    if (n_carried < 0) return ctx.Error("Loop needs at least 2 inputs (M, cond)");
    const int n_scan = static_cast<int>(g.outputs.size()) - 1 - n_carried;
    if (n_scan < 0 || static_cast<int>(g.inputs.size()) != n_carried + 2)
      return ctx.Error("body signature does not match the node's inputs");
    int64_t max_trips = INT64_MAX;
    if (ctx.has_input(0)) {
      PX_ASSIGN_OR_RETURN(std::vector<int64_t> m, ReadInt64s(ctx.input(0)));
      if (m.size() != 1) return ctx.Error("trip count M must be a scalar");
      max_trips = m[0];
    }
    bool cond = true;
    if (ctx.has_input(1)) {
      PX_ASSIGN_OR_RETURN(cond, ReadBool(ctx.input(1), ctx, "Loop condition"));
    }
    std::vector<Tensor> carried;
    for (int i = 0; i < n_carried; ++i) carried.push_back(ctx.input(2 + i));
    std::vector<std::vector<Tensor>> scans(static_cast<size_t>(n_scan));
    const std::vector<Tensor> caps = Captures(body, ctx);
    std::vector<Tensor> ins(static_cast<size_t>(n_carried + 2)), outs;
    for (int64_t it = 0; it < max_trips && cond; ++it) {
      ins[0] = Tensor::FromVector<int64_t>(DType::kInt64, {}, {it});
      ins[1] = Tensor::FromVector<bool>(DType::kBool, {}, {cond});
      for (int i = 0; i < n_carried; ++i)
        ins[static_cast<size_t>(2 + i)] = carried[static_cast<size_t>(i)];
      Status s = RunBody(body, ctx, ins, caps, &outs);
      if (!s.ok()) return s.WithContext(ctx.node().Describe() + " iteration " + std::to_string(it));
      PX_ASSIGN_OR_RETURN(cond, ReadBool(outs[0], ctx, "Loop body condition output"));
      for (int i = 0; i < n_carried; ++i)
        carried[static_cast<size_t>(i)] = std::move(outs[static_cast<size_t>(1 + i)]);
      for (int k = 0; k < n_scan; ++k)
        scans[static_cast<size_t>(k)].push_back(
            std::move(outs[static_cast<size_t>(1 + n_carried + k)]));
    }
    for (int i = 0; i < n_carried; ++i)
      PX_RETURN_IF_ERROR(ctx.SetOutput(i, carried[static_cast<size_t>(i)]));
    for (int k = 0; k < n_scan; ++k) {
      const Value& v = g.values[g.outputs[static_cast<size_t>(1 + n_carried + k)]];
      Shape empty = static_cast<size_t>(n_carried + k) < empty_shapes.size()
                        ? empty_shapes[static_cast<size_t>(n_carried + k)]
                        : Shape{0};
      Result<Tensor> st = Stack(scans[static_cast<size_t>(k)], 0, v.dtype, empty);
      if (!st.ok()) return st.status().WithContext(ctx.node().Describe());
      PX_RETURN_IF_ERROR(ctx.SetOutput(n_carried + k, std::move(st).value()));
    }
    return Status::Ok();
  }
};

// How a Scan walks its inputs and stacks its outputs.
struct ScanSpec {
  std::vector<int> in_axes;  // Sequence axis per scan input.
  std::vector<bool> in_reverse;
  std::vector<int64_t> out_axes;  // Unnormalised stacking axis per scan output.
  std::vector<bool> out_reverse;
};

bool Flag(const std::vector<int64_t>& v, size_t i) { return i < v.size() && v[i] == 1; }

// Runs the body once per sequence step: state carried, scan inputs sliced,
// scan outputs stacked. `state` holds the initial state and ends final.
Status RunScan(const Body& body, const KernelContext& ctx, std::vector<Tensor>& state,
               const std::vector<Tensor>& scan_in, const ScanSpec& spec,
               std::vector<Tensor>* scan_out) {
  const size_t n = state.size(), m = scan_in.size();
  const size_t k = body.graph->outputs.size() - n;
  int64_t length = -1;
  for (size_t j = 0; j < m; ++j) {
    int64_t len = scan_in[j].shape()[static_cast<size_t>(spec.in_axes[j])];
    if (length >= 0 && len != length)
      return ctx.Error("scan inputs have different sequence lengths");
    length = len;
  }
  std::vector<std::vector<Tensor>> parts(k);
  const std::vector<Tensor> caps = Captures(body, ctx);
  std::vector<Tensor> ins(n + m), outs;
  for (int64_t t = 0; t < length; ++t) {
    for (size_t i = 0; i < n; ++i) ins[i] = state[i];
    for (size_t j = 0; j < m; ++j)
      ins[n + j] = SliceAxis(scan_in[j], spec.in_axes[j], spec.in_reverse[j] ? length - 1 - t : t);
    Status s = RunBody(body, ctx, ins, caps, &outs);
    if (!s.ok()) return s.WithContext(ctx.node().Describe() + " step " + std::to_string(t));
    for (size_t i = 0; i < n; ++i) state[i] = std::move(outs[i]);
    for (size_t j = 0; j < k; ++j) parts[j].push_back(std::move(outs[n + j]));
  }
  scan_out->clear();
  for (size_t j = 0; j < k; ++j) {
    if (spec.out_reverse[j]) std::reverse(parts[j].begin(), parts[j].end());
    int rank = parts[j].empty() ? 1 : parts[j][0].rank() + 1;
    PX_ASSIGN_OR_RETURN(int axis, NormalizeAxis(spec.out_axes[j], rank));
    const Value& v = body.graph->values[body.graph->outputs[n + j]];
    Result<Tensor> st = Stack(parts[j], axis, v.dtype, Shape{0});
    if (!st.ok()) return st.status().WithContext(ctx.node().Describe());
    scan_out->push_back(std::move(st).value());
  }
  return Status::Ok();
}

// Scan, opset 9 and newer: no batch axis, per-input axes and directions.
class ScanKernel : public Kernel {
 public:
  Body body;
  Status Run(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const int m = static_cast<int>(node.attr_int("num_scan_inputs", 0));
    const int n = ctx.num_inputs() - m;
    const int k = static_cast<int>(body.graph->outputs.size()) - n;
    if (m <= 0 || n < 0 || k < 0) return ctx.Error("num_scan_inputs does not match the inputs");
    const std::vector<int64_t> in_axes = node.attr_ints("scan_input_axes");
    const std::vector<int64_t> in_dirs = node.attr_ints("scan_input_directions");
    const std::vector<int64_t> out_axes = node.attr_ints("scan_output_axes");
    const std::vector<int64_t> out_dirs = node.attr_ints("scan_output_directions");
    ScanSpec spec;
    std::vector<Tensor> state, scan_in, scan_out;
    for (int i = 0; i < n; ++i) state.push_back(ctx.input(i));
    for (size_t j = 0; j < static_cast<size_t>(m); ++j) {
      scan_in.push_back(ctx.input(n + static_cast<int>(j)));
      PX_ASSIGN_OR_RETURN(
          int axis, NormalizeAxis(j < in_axes.size() ? in_axes[j] : 0, scan_in.back().rank()));
      spec.in_axes.push_back(axis);
      spec.in_reverse.push_back(Flag(in_dirs, j));
    }
    for (size_t j = 0; j < static_cast<size_t>(k); ++j) {
      spec.out_axes.push_back(j < out_axes.size() ? out_axes[j] : 0);
      spec.out_reverse.push_back(Flag(out_dirs, j));
    }
    PX_RETURN_IF_ERROR(RunScan(body, ctx, state, scan_in, spec, &scan_out));
    for (int i = 0; i < n; ++i) PX_RETURN_IF_ERROR(ctx.SetOutput(i, state[static_cast<size_t>(i)]));
    for (int j = 0; j < k; ++j)
      PX_RETURN_IF_ERROR(ctx.SetOutput(n + j, scan_out[static_cast<size_t>(j)]));
    return Status::Ok();
  }
};

// Scan, opset 8: input 0 is the optional sequence_lens, every other input
// and output has a leading batch axis, and sequences run along axis 1.
class Scan8Kernel : public Kernel {
 public:
  Body body;
  Status Run(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const int m = static_cast<int>(node.attr_int("num_scan_inputs", 0));
    const int n = ctx.num_inputs() - 1 - m;
    const int k = static_cast<int>(body.graph->outputs.size()) - n;
    if (m <= 0 || n < 0 || k < 0) return ctx.Error("num_scan_inputs does not match the inputs");
    const int64_t batch = ctx.input(1).rank() > 0 ? ctx.input(1).dim(0) : 0;
    for (int i = 1; i < ctx.num_inputs(); ++i)
      if (ctx.input(i).rank() < 1 || ctx.input(i).dim(0) != batch)
        return ctx.Error("every state and scan input needs the same leading batch dimension");
    if (ctx.has_input(0)) {
      PX_ASSIGN_OR_RETURN(std::vector<int64_t> lens, ReadInt64s(ctx.input(0)));
      for (int64_t len : lens)
        if (m > 0 && len != ctx.input(1 + n).dim(1))
          return Unsupported(node.Describe() + ": sequence_lens shorter than the scan inputs");
    }
    const std::vector<int64_t> dirs = node.attr_ints("directions");
    ScanSpec spec;
    for (size_t j = 0; j < static_cast<size_t>(m); ++j) {
      spec.in_axes.push_back(0);
      spec.in_reverse.push_back(Flag(dirs, j));
    }
    spec.out_axes.assign(static_cast<size_t>(k), 0);
    spec.out_reverse.assign(static_cast<size_t>(k), false);
    std::vector<std::vector<Tensor>> finals(static_cast<size_t>(n)), scans(static_cast<size_t>(k));
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<Tensor> state, scan_in, scan_out;
      for (int i = 0; i < n; ++i) state.push_back(SliceAxis(ctx.input(1 + i), 0, b));
      for (int j = 0; j < m; ++j) scan_in.push_back(SliceAxis(ctx.input(1 + n + j), 0, b));
      PX_RETURN_IF_ERROR(RunScan(body, ctx, state, scan_in, spec, &scan_out));
      for (int i = 0; i < n; ++i)
        finals[static_cast<size_t>(i)].push_back(std::move(state[static_cast<size_t>(i)]));
      for (int j = 0; j < k; ++j)
        scans[static_cast<size_t>(j)].push_back(std::move(scan_out[static_cast<size_t>(j)]));
    }
    for (int i = 0; i < n + k; ++i) {
      const auto& parts =
          i < n ? finals[static_cast<size_t>(i)] : scans[static_cast<size_t>(i - n)];
      const Value& v = body.graph->values[body.graph->outputs[static_cast<size_t>(i)]];
      Result<Tensor> st = Stack(parts, 0, v.dtype, Shape{0});
      if (!st.ok()) return st.status().WithContext(node.Describe());
      PX_RETURN_IF_ERROR(ctx.SetOutput(i, std::move(st).value()));
    }
    return Status::Ok();
  }
};

Result<std::unique_ptr<Kernel>> MakeIf(const KernelInit& init) {
  auto k = std::make_unique<IfKernel>();
  PX_ASSIGN_OR_RETURN(k->then_b, CompileBody(init, "then_branch"));
  PX_ASSIGN_OR_RETURN(k->else_b, CompileBody(init, "else_branch"));
  return std::unique_ptr<Kernel>(std::move(k));
}

Result<std::unique_ptr<Kernel>> MakeLoop(const KernelInit& init) {
  auto k = std::make_unique<LoopKernel>();
  PX_ASSIGN_OR_RETURN(k->body, CompileBody(init, "body"));
  const Graph& body = *k->body.graph;
  for (size_t i = 0; i < init.node.outputs.size(); ++i) {
    Shape s{0};
    const ValueId o = init.node.outputs[i];
    const size_t body_out = i + 1;  // Skips the condition output.
    if (o != kNoValue && init.graph.values[o].has_shape && !init.graph.values[o].dims.empty()) {
      const auto& dims = init.graph.values[o].dims;
      for (size_t d = 1; d < dims.size(); ++d) s.push_back(dims[d].known() ? dims[d].size : 0);
    } else if (body_out < body.outputs.size()) {
      for (const Dim& d : body.values[body.outputs[body_out]].dims)
        s.push_back(d.known() ? d.size : 0);
    }
    k->empty_shapes.push_back(s);
  }
  return std::unique_ptr<Kernel>(std::move(k));
}

Result<std::unique_ptr<Kernel>> MakeScan(const KernelInit& init) {
  if (init.opset() < 9) {
    auto k = std::make_unique<Scan8Kernel>();
    PX_ASSIGN_OR_RETURN(k->body, CompileBody(init, "body"));
    return std::unique_ptr<Kernel>(std::move(k));
  }
  auto k = std::make_unique<ScanKernel>();
  PX_ASSIGN_OR_RETURN(k->body, CompileBody(init, "body"));
  return std::unique_ptr<Kernel>(std::move(k));
}

}  // namespace

void RegisterControlFlowOps(OpRegistry& r) {
  r.Register("", "If", MakeIf);
  r.Register("", "Loop", MakeLoop);
  r.Register("", "Scan", MakeScan, 8);
}

}  // namespace parallax
