// ONNX Einsum (opset 12+): any equation, implicit or explicit output,
// repeated labels (diagonals), ellipsis broadcasting.
//
// Every operand is a strided "view" whose axes carry labels. A repeated label
// within one operand becomes a single axis whose stride is the sum of the
// strides (a diagonal, no copy). Operands are contracted left to right: each
// pair becomes a batched matrix product [batch, M, K] x [batch, K, N], with
// labels only one side needs summed while packing. The last view is packed
// into the output order, summing the labels the output does not name.
#include <algorithm>
#include <string>
#include <vector>

#include "backends/cpu/kernels/misc_util.h"
#include "ops/dispatch.h"

namespace parallax {
namespace {

constexpr int kNumLetters = 52;  // 'A'-'Z' then 'a'-'z'; ellipsis dims follow.

int LetterId(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  return -1;
}

struct Term {
  std::vector<int> letters;
  int ellipsis_pos = -1;  // Index in `letters` where "..." sits, or -1.
};

struct Equation {
  std::vector<Term> inputs;
  bool has_output = false;
  Term output;
};

Result<Term> ParseTerm(const std::string& s) {
  Term t;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (t.ellipsis_pos >= 0 || s.compare(i, 3, "...") != 0)
        return InvalidArgument("malformed ellipsis in einsum term '" + s + "'");
      t.ellipsis_pos = static_cast<int>(t.letters.size());
      i += 2;
      continue;
    }
    int id = LetterId(s[i]);
    if (id < 0)
      return InvalidArgument("invalid character '" + std::string(1, s[i]) + "' in einsum term '" +
                             s + "'");
    t.letters.push_back(id);
  }
  return t;
}

Result<Equation> ParseEquation(const std::string& raw) {
  std::string eq;
  for (char c : raw)
    if (c != ' ') eq.push_back(c);
  Equation e;
  size_t arrow = eq.find("->");
  std::string lhs = eq.substr(0, arrow);
  if (arrow != std::string::npos) {
    e.has_output = true;
    PX_ASSIGN_OR_RETURN(e.output, ParseTerm(eq.substr(arrow + 2)));
  }
  size_t start = 0;
  while (true) {
    size_t comma = lhs.find(',', start);
    PX_ASSIGN_OR_RETURN(Term t, ParseTerm(lhs.substr(start, comma - start)));
    e.inputs.push_back(std::move(t));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return e;
}

// Labels of every axis of every input and of the output, and label sizes.
struct Resolved {
  std::vector<std::vector<int>> inputs;
  std::vector<int> output;
  std::vector<int64_t> sizes;  // Indexed by label id.
};

std::vector<int> ExpandTerm(const Term& t, int ell_rank, int total_ell) {
  std::vector<int> labels;
  for (size_t i = 0; i <= t.letters.size(); ++i) {
    if (static_cast<int>(i) == t.ellipsis_pos)
      for (int k = total_ell - ell_rank; k < total_ell; ++k) labels.push_back(kNumLetters + k);
    if (i < t.letters.size()) labels.push_back(t.letters[i]);
  }
  return labels;
}

Result<Resolved> Resolve(const Equation& e, const std::vector<Shape>& shapes) {
  Resolved r;
  int total_ell = 0;
  std::vector<int> ell_ranks;
  for (size_t i = 0; i < e.inputs.size(); ++i) {
    const Term& t = e.inputs[i];
    int rank = static_cast<int>(shapes[i].size()), nl = static_cast<int>(t.letters.size());
    int ell = rank - nl;
    if ((t.ellipsis_pos < 0 && ell != 0) || ell < 0)
      return InvalidArgument("einsum input " + std::to_string(i) + " has rank " +
                             std::to_string(rank) + " but its term names " + std::to_string(nl) +
                             " axes");
    ell_ranks.push_back(ell);
    total_ell = std::max(total_ell, ell);
  }
  r.sizes.assign(static_cast<size_t>(kNumLetters + total_ell), -1);
  std::vector<int> count(r.sizes.size(), 0);
  for (size_t i = 0; i < e.inputs.size(); ++i) {
    std::vector<int> labels = ExpandTerm(e.inputs[i], ell_ranks[i], total_ell);
    for (size_t a = 0; a < labels.size(); ++a) {
      int64_t& s = r.sizes[labels[a]];
      int64_t d = shapes[i][a];
      ++count[labels[a]];
      bool ell = labels[a] >= kNumLetters;
      if (s < 0 || (ell && s == 1))
        s = d;
      else if (s != d && !(ell && d == 1))
        return InvalidArgument("einsum label size mismatch: " + std::to_string(s) + " vs " +
                               std::to_string(d) + " in input " + std::to_string(i));
    }
    r.inputs.push_back(std::move(labels));
  }
  if (e.has_output) {
    // Without "..." in the output, ellipsis dims are summed over.
    r.output = ExpandTerm(e.output, total_ell, total_ell);
    for (size_t a = 0; a < r.output.size(); ++a) {
      int l = r.output[a];
      if (count[l] == 0) return InvalidArgument("einsum output label does not appear in any input");
      for (size_t b = 0; b < a; ++b)
        if (r.output[b] == l) return InvalidArgument("einsum output repeats a label");
    }
  } else {
    for (int k = 0; k < total_ell; ++k) r.output.push_back(kNumLetters + k);
    for (int l = 0; l < kNumLetters; ++l)
      if (count[l] == 1) r.output.push_back(l);
  }
  return r;
}

// A strided operand whose axes carry unique labels.
template <typename T>
struct View {
  const T* data = nullptr;
  std::vector<int> labels;
  std::vector<int64_t> sizes, strides;
  std::vector<T> owned;  // Backing storage for contraction results.
};

template <typename T>
View<T> MakeView(const T* data, const std::vector<int>& labels, const Shape& shape) {
  View<T> v;
  v.data = data;
  int64_t stride = 1;
  std::vector<int64_t> st(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = stride;
    stride *= shape[i];
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    auto it = std::find(v.labels.begin(), v.labels.end(), labels[i]);
    if (it != v.labels.end()) {  // Repeated label: walk the diagonal.
      v.strides[static_cast<size_t>(it - v.labels.begin())] += st[i];
      continue;
    }
    v.labels.push_back(labels[i]);
    v.sizes.push_back(shape[i]);
    v.strides.push_back(st[i]);
  }
  return v;
}

// Calls f(offset) for every index of `sizes` in row-major order.
template <typename F>
void ForEachOffset(const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides, F&& f) {
  for (int64_t s : sizes)
    if (s == 0) return;
  const size_t r = sizes.size();
  if (r == 0) {
    f(int64_t{0});
    return;
  }
  std::vector<int64_t> idx(r, 0);
  int64_t off = 0;
  const int64_t n_in = sizes[r - 1], s_in = strides[r - 1];
  while (true) {
    for (int64_t i = 0; i < n_in; ++i) f(off + i * s_in);
    int d = static_cast<int>(r) - 2;
    for (; d >= 0; --d) {
      off += strides[d];
      if (++idx[d] < sizes[d]) break;
      off -= strides[d] * sizes[d];
      idx[d] = 0;
    }
    if (d < 0) break;
  }
}

// Packs `v` into contiguous `out` with axes `target` (sizes from `sizes`),
// broadcasting size-1 axes and summing the view's labels not in `target`.
template <typename T>
void Pack(const View<T>& v, const std::vector<int>& target, const std::vector<int64_t>& sizes,
          T* out) {
  std::vector<int64_t> osz, ost, rsz, rst;
  for (int l : target) {
    osz.push_back(sizes[l]);
    auto it = std::find(v.labels.begin(), v.labels.end(), l);
    size_t i = static_cast<size_t>(it - v.labels.begin());
    ost.push_back(it == v.labels.end() || v.sizes[i] != sizes[l] ? 0 : v.strides[i]);
  }
  for (size_t i = 0; i < v.labels.size(); ++i) {
    if (std::find(target.begin(), target.end(), v.labels[i]) != target.end()) continue;
    rsz.push_back(v.sizes[i]);
    rst.push_back(v.strides[i]);
  }
  const T* data = v.data;
  T* o = out;
  if (rsz.empty()) {
    ForEachOffset(osz, ost, [&](int64_t base) { *o++ = data[base]; });
    return;
  }
  ForEachOffset(osz, ost, [&](int64_t base) {
    T acc = T(0);
    ForEachOffset(rsz, rst, [&](int64_t r) { acc += data[base + r]; });
    *o++ = acc;
  });
}

int64_t Product(const std::vector<int>& labels, const std::vector<int64_t>& sizes) {
  int64_t p = 1;
  for (int l : labels) p *= sizes[l];
  return p;
}

bool Has(const std::vector<int>& v, int l) { return std::find(v.begin(), v.end(), l) != v.end(); }

// C[b] = A[b] (M x K) * B[b] (K x N), all contiguous.
template <typename T>
void BatchedMatMul(int64_t batch, int64_t M, int64_t K, int64_t N, const T* A, const T* B, T* C) {
  std::fill(C, C + batch * M * N, T(0));
  for (int64_t b = 0; b < batch; ++b) {
    const T* a = A + b * M * K;
    const T* bm = B + b * K * N;
    T* c = C + b * M * N;
    for (int64_t m = 0; m < M; ++m) {
      T* crow = c + m * N;
      for (int64_t k = 0; k < K; ++k) {
        const T av = a[m * K + k];
        const T* brow = bm + k * N;
        for (int64_t n = 0; n < N; ++n) crow[n] += av * brow[n];
      }
    }
  }
}

// Contracts two views, keeping the labels in `keep`.
template <typename T>
View<T> Contract(const View<T>& a, const View<T>& b, const std::vector<int>& keep,
                 const std::vector<int64_t>& sizes) {
  std::vector<int> batch, m, n, k;
  for (int l : a.labels) {
    bool in_b = Has(b.labels, l), kept = Has(keep, l);
    if (in_b && kept)
      batch.push_back(l);
    else if (in_b)
      k.push_back(l);
    else if (kept)
      m.push_back(l);
  }
  for (int l : b.labels)
    if (!Has(a.labels, l) && Has(keep, l)) n.push_back(l);
  const int64_t nb = Product(batch, sizes), nm = Product(m, sizes), nk = Product(k, sizes),
                nn = Product(n, sizes);
  std::vector<int> a_order = batch, b_order = batch;
  a_order.insert(a_order.end(), m.begin(), m.end());
  a_order.insert(a_order.end(), k.begin(), k.end());
  b_order.insert(b_order.end(), k.begin(), k.end());
  b_order.insert(b_order.end(), n.begin(), n.end());
  std::vector<T> pa(static_cast<size_t>(nb * nm * nk)), pb(static_cast<size_t>(nb * nk * nn));
  Pack(a, a_order, sizes, pa.data());
  Pack(b, b_order, sizes, pb.data());
  View<T> c;
  c.owned.resize(static_cast<size_t>(nb * nm * nn));
  BatchedMatMul(nb, nm, nk, nn, pa.data(), pb.data(), c.owned.data());
  c.data = c.owned.data();
  c.labels = batch;
  c.labels.insert(c.labels.end(), m.begin(), m.end());
  c.labels.insert(c.labels.end(), n.begin(), n.end());
  int64_t stride = 1;
  c.strides.assign(c.labels.size(), 0);
  for (size_t i = c.labels.size(); i-- > 0;) {
    c.strides[i] = stride;
    stride *= sizes[c.labels[i]];
  }
  for (int l : c.labels) c.sizes.push_back(sizes[l]);
  return c;
}

template <typename T>
void RunEinsum(const Resolved& r, const std::vector<const T*>& inputs,
               const std::vector<Shape>& shapes, T* out) {
  View<T> cur = MakeView(inputs[0], r.inputs[0], shapes[0]);
  for (size_t i = 1; i < inputs.size(); ++i) {
    View<T> next = MakeView(inputs[i], r.inputs[i], shapes[i]);
    std::vector<int> keep = r.output;
    for (size_t j = i + 1; j < inputs.size(); ++j)
      keep.insert(keep.end(), r.inputs[j].begin(), r.inputs[j].end());
    cur = Contract(cur, next, keep, r.sizes);
  }
  Pack(cur, r.output, r.sizes, out);
}

Status Einsum(KernelContext& ctx) {
  auto parsed = ParseEquation(ctx.node().attr_string("equation", ""));
  if (!parsed.ok()) return ctx.Error(parsed.status().message());
  const Equation& eq = parsed.value();
  if (static_cast<int>(eq.inputs.size()) != ctx.num_inputs())
    return ctx.Error("equation has " + std::to_string(eq.inputs.size()) +
                     " input terms but the node has " + std::to_string(ctx.num_inputs()) +
                     " inputs");
  std::vector<Shape> shapes;
  const DType dt = ctx.input(0).dtype();
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) return ctx.Error("input " + std::to_string(i) + " is missing");
    if (ctx.input(i).dtype() != dt) return ctx.Error("inputs must share one dtype");
    shapes.push_back(ctx.input(i).shape());
  }
  auto resolved = Resolve(eq, shapes);
  if (!resolved.ok()) return ctx.Error(resolved.status().message());
  const Resolved& r = resolved.value();
  Shape out_shape;
  for (int l : r.output) out_shape.push_back(r.sizes[l]);
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dt, out_shape));
  if (dt == DType::kFloat16) {
    std::vector<std::vector<float>> bufs(shapes.size());
    std::vector<const float*> ptrs;
    for (size_t i = 0; i < shapes.size(); ++i) {
      const Half* h = ctx.input(static_cast<int>(i)).data<Half>();
      for (int64_t j = 0; j < NumElements(shapes[i]); ++j) bufs[i].push_back(HalfToFloat(h[j]));
      ptrs.push_back(bufs[i].data());
    }
    std::vector<float> o(static_cast<size_t>(out->numel()));
    RunEinsum(r, ptrs, shapes, o.data());
    for (size_t j = 0; j < o.size(); ++j) out->data<Half>()[j] = FloatToHalf(o[j]);
    return Status::Ok();
  }
  return DispatchNumeric(dt, [&]<typename T>() -> Status {
    std::vector<const T*> ptrs;
    for (int i = 0; i < ctx.num_inputs(); ++i) ptrs.push_back(ctx.input(i).data<T>());
    RunEinsum(r, ptrs, shapes, out->data<T>());
    return Status::Ok();
  });
}

}  // namespace

void RegisterEinsumOp(OpRegistry& r) { r.Register("Einsum", Einsum); }

}  // namespace parallax
