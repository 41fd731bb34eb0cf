// Sequence and optional values: SequenceEmpty/Construct/Insert/At/Erase/
// Length, SplitToSequence, ConcatFromSequence, SequenceMap, Optional,
// OptionalHasElement, OptionalGetElement, and Identity (which passes any
// value kind). Sequences are immutable Tensors of kind kSequence whose
// elements own their bytes.
#include <cstring>

#include "backends/cpu/kernels/families.h"
#include "ops/shape_util.h"
#include "runtime/subgraph_body.h"

namespace parallax {
namespace {

Result<const Tensor*> SequenceInput(const KernelContext& ctx, int i) {
  if (!ctx.has_input(i) || !ctx.input(i).is_sequence())
    return ctx.Error("input " + std::to_string(i) + " must be a sequence");
  return &ctx.input(i);
}

// Position input (optional) normalised to [0, limit]; `def` when absent.
Result<int64_t> Position(const KernelContext& ctx, int i, int64_t size, int64_t def,
                         bool allow_end) {
  if (!ctx.has_input(i)) return def;
  PX_ASSIGN_OR_RETURN(std::vector<int64_t> p, ReadInt64s(ctx.input(i)));
  if (p.size() != 1) return ctx.Error("position must be a scalar");
  int64_t pos = p[0] < 0 ? p[0] + size : p[0];
  if (pos < 0 || pos > size || (!allow_end && pos == size))
    return ctx.Error("position " + std::to_string(p[0]) +
                     " is out of range for a sequence of length " + std::to_string(size));
  return pos;
}

Status SequenceEmpty(KernelContext& ctx) {
  return ctx.SetOutput(0,
                       Tensor::Sequence(static_cast<DType>(ctx.node().attr_int("dtype", 1)), {}));
}

Status SequenceConstruct(KernelContext& ctx) {
  std::vector<Tensor> elems;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (ctx.input(i).dtype() != ctx.input(0).dtype())
      return ctx.Error("sequence elements must share one dtype");
    elems.push_back(ctx.input(i).Detached());
  }
  return ctx.SetOutput(0, Tensor::Sequence(ctx.input(0).dtype(), std::move(elems)));
}

Status SequenceInsert(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(const Tensor* seq, SequenceInput(ctx, 0));
  std::vector<Tensor> elems = seq->elements();
  const Tensor& t = ctx.input(1);
  if (seq->element_dtype() != DType::kUndefined && t.dtype() != seq->element_dtype())
    return ctx.Error("inserting a " + std::string(DTypeName(t.dtype())) +
                     " tensor into a sequence of " + std::string(DTypeName(seq->element_dtype())));
  const int64_t n = static_cast<int64_t>(elems.size());
  PX_ASSIGN_OR_RETURN(int64_t pos, Position(ctx, 2, n, n, true));
  elems.insert(elems.begin() + pos, t.Detached());
  return ctx.SetOutput(0, Tensor::Sequence(t.dtype(), std::move(elems)));
}

Status SequenceAt(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(const Tensor* seq, SequenceInput(ctx, 0));
  const int64_t n = static_cast<int64_t>(seq->elements().size());
  PX_ASSIGN_OR_RETURN(int64_t pos, Position(ctx, 1, n, 0, false));
  return ctx.SetOutput(0, seq->elements()[static_cast<size_t>(pos)]);
}

Status SequenceErase(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(const Tensor* seq, SequenceInput(ctx, 0));
  std::vector<Tensor> elems = seq->elements();
  const int64_t n = static_cast<int64_t>(elems.size());
  if (n == 0) return ctx.Error("cannot erase from an empty sequence");
  PX_ASSIGN_OR_RETURN(int64_t pos, Position(ctx, 1, n, n - 1, false));
  elems.erase(elems.begin() + pos);
  return ctx.SetOutput(0, Tensor::Sequence(seq->element_dtype(), std::move(elems)));
}

Status SequenceLength(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(const Tensor* seq, SequenceInput(ctx, 0));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt64, {}));
  out->data<int64_t>()[0] = static_cast<int64_t>(seq->elements().size());
  return Status::Ok();
}

// Copies [begin, begin+len) along `axis` of `t` into a new tensor.
Tensor SliceRange(const Tensor& t, int axis, int64_t begin, int64_t len, bool keep_axis) {
  Shape s = t.shape();
  s[static_cast<size_t>(axis)] = len;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= t.shape()[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < s.size(); ++d) inner *= s[d];
  Tensor out = Tensor::Uninitialized(t.dtype(), s);
  const size_t es = DTypeSize(t.dtype()), row = static_cast<size_t>(len * inner) * es;
  const int64_t full = t.shape()[static_cast<size_t>(axis)];
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(static_cast<uint8_t*>(out.raw_data()) + static_cast<size_t>(o) * row,
                static_cast<const uint8_t*>(t.raw_data()) +
                    static_cast<size_t>((o * full + begin) * inner) * es,
                row);
  if (!keep_axis) {
    s.erase(s.begin() + axis);
    out = out.Reshaped(s);
  }
  return out;
}

Status SplitToSequence(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.node().attr_int("axis", 0), x.rank()));
  const int64_t dim = x.shape()[static_cast<size_t>(axis)];
  std::vector<int64_t> sizes;
  bool keep = true;
  if (!ctx.has_input(1)) {
    sizes.assign(static_cast<size_t>(dim), 1);
    keep = ctx.node().attr_int("keepdims", 1) != 0;
  } else {
    PX_ASSIGN_OR_RETURN(sizes, ReadInt64s(ctx.input(1)));
    if (ctx.input(1).rank() == 0) {
      int64_t chunk = sizes[0];
      if (chunk <= 0) return ctx.Error("split size must be positive");
      sizes.clear();
      for (int64_t left = dim; left > 0; left -= chunk) sizes.push_back(std::min(chunk, left));
    }
  }
  int64_t total = 0;
  for (int64_t v : sizes) {
    if (v < 0) return ctx.Error("split sizes must be non-negative");
    total += v;
  }
  if (total != dim)
    return ctx.Error("split sizes sum to " + std::to_string(total) + ", axis has " +
                     std::to_string(dim));
  std::vector<Tensor> parts;
  int64_t begin = 0;
  for (int64_t v : sizes) {
    parts.push_back(SliceRange(x, axis, begin, v, keep));
    begin += v;
  }
  return ctx.SetOutput(0, Tensor::Sequence(x.dtype(), std::move(parts)));
}

Status ConcatFromSequence(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(const Tensor* seq, SequenceInput(ctx, 0));
  const auto& el = seq->elements();
  if (el.empty()) return ctx.Error("cannot concatenate an empty sequence");
  const bool new_axis = ctx.node().attr_int("new_axis", 0) != 0;
  Shape base = el[0].shape();
  if (new_axis) {
    PX_ASSIGN_OR_RETURN(int a, NormalizeAxis(ctx.node().attr_int("axis", 0), el[0].rank() + 1));
    base.insert(base.begin() + a, 1);
  }
  PX_ASSIGN_OR_RETURN(int axis,
                      NormalizeAxis(ctx.node().attr_int("axis", 0), static_cast<int>(base.size())));
  Shape out = base;
  out[static_cast<size_t>(axis)] = 0;
  for (const Tensor& t : el) {
    Shape s = t.shape();
    if (new_axis) s.insert(s.begin() + axis, 1);
    for (size_t d = 0; d < s.size(); ++d)
      if (d != static_cast<size_t>(axis) && (s.size() != base.size() || s[d] != base[d]))
        return ctx.Error("sequence elements have incompatible shapes " +
                         ShapeToString(el[0].shape()) + " and " + ShapeToString(t.shape()));
    out[static_cast<size_t>(axis)] += s[static_cast<size_t>(axis)];
  }
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, el[0].dtype(), out));
  int64_t outer = 1;
  for (int d = 0; d < axis; ++d) outer *= out[static_cast<size_t>(d)];
  const size_t es = DTypeSize(y->dtype());
  size_t out_row = static_cast<size_t>(y->numel() / std::max<int64_t>(outer, 1)) * es, offset = 0;
  for (const Tensor& t : el) {
    size_t row = static_cast<size_t>(t.numel() / std::max<int64_t>(outer, 1)) * es;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(static_cast<uint8_t*>(y->raw_data()) + static_cast<size_t>(o) * out_row + offset,
                  static_cast<const uint8_t*>(t.raw_data()) + static_cast<size_t>(o) * row, row);
    offset += row;
  }
  return Status::Ok();
}

class SequenceMapKernel : public Kernel {
 public:
  Body body;
  Status Run(KernelContext& ctx) override {
    PX_ASSIGN_OR_RETURN(const Tensor* first, SequenceInput(ctx, 0));
    const size_t n = first->elements().size();
    for (int i = 1; i < ctx.num_inputs(); ++i)
      if (ctx.input(i).is_sequence() && ctx.input(i).elements().size() != n)
        return ctx.Error("input sequences have different lengths");
    std::vector<std::vector<Tensor>> outs(static_cast<size_t>(ctx.num_outputs()));
    const std::vector<Tensor> caps = Captures(body, ctx);
    std::vector<Tensor> ins(static_cast<size_t>(ctx.num_inputs())), res;
    for (size_t k = 0; k < n; ++k) {
      for (int i = 0; i < ctx.num_inputs(); ++i) {
        const Tensor& in = ctx.input(i);
        ins[static_cast<size_t>(i)] = in.is_sequence() ? in.elements()[k] : in;
      }
      Status s = RunBody(body, ctx, ins, caps, &res);
      if (!s.ok()) return s.WithContext(ctx.node().Describe() + " element " + std::to_string(k));
      for (size_t j = 0; j < outs.size(); ++j) outs[j].push_back(res[j].Detached());
    }
    for (size_t j = 0; j < outs.size(); ++j) {
      DType dt = outs[j].empty() ? DType::kUndefined : outs[j][0].dtype();
      PX_RETURN_IF_ERROR(
          ctx.SetOutput(static_cast<int>(j), Tensor::Sequence(dt, std::move(outs[j]))));
    }
    return Status::Ok();
  }
};

Result<std::unique_ptr<Kernel>> MakeSequenceMap(const KernelInit& init) {
  auto k = std::make_unique<SequenceMapKernel>();
  PX_ASSIGN_OR_RETURN(k->body, CompileBody(init, "body"));
  return std::unique_ptr<Kernel>(std::move(k));
}

Status Optional(KernelContext& ctx) {
  return ctx.SetOutput(0, ctx.has_input(0) ? ctx.input(0).Detached() : Tensor::None());
}

Status OptionalHasElement(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kBool, {}));
  out->data<bool>()[0] = ctx.has_input(0) && !ctx.input(0).is_none();
  return Status::Ok();
}

Status OptionalGetElement(KernelContext& ctx) {
  if (!ctx.has_input(0) || ctx.input(0).is_none())
    return ctx.Error("the optional input has no value");
  return ctx.SetOutput(0, ctx.input(0).Detached());
}

Status Identity(KernelContext& ctx) { return ctx.SetOutput(0, Tensor::Copy(ctx.input(0))); }

}  // namespace

void RegisterSequenceOps(OpRegistry& r) {
  r.Register("SequenceEmpty", SequenceEmpty);
  r.Register("SequenceConstruct", SequenceConstruct);
  r.Register("SequenceInsert", SequenceInsert);
  r.Register("SequenceAt", SequenceAt);
  r.Register("SequenceErase", SequenceErase);
  r.Register("SequenceLength", SequenceLength);
  r.Register("SplitToSequence", SplitToSequence);
  r.Register("ConcatFromSequence", ConcatFromSequence);
  r.Register("", "SequenceMap", MakeSequenceMap);
  r.Register("Optional", Optional);
  r.Register("OptionalHasElement", OptionalHasElement);
  r.Register("OptionalGetElement", OptionalGetElement);
  r.Register("Identity", Identity);
}

}  // namespace parallax
