// Text features over integer token ids: TfIdfVectorizer (string tokens are
// not supported: Parallax has no string tensors).
#include <map>
#include <vector>

#include "backends/cpu/kernels/families.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

class TfIdfVectorizer : public Kernel {
 public:
  static Result<std::unique_ptr<Kernel>> Create(const KernelInit& init) {
    auto k = std::make_unique<TfIdfVectorizer>();
    const Node& n = init.node;
    k->min_n_ = n.attr_int("min_gram_length", 1);
    k->max_n_ = n.attr_int("max_gram_length", 1);
    k->max_skip_ = n.attr_int("max_skip_count", 0);
    std::string mode = n.attr_string("mode", "TF");
    k->mode_ = mode == "TF" ? 0 : mode == "IDF" ? 1 : mode == "TFIDF" ? 2 : -1;
    if (k->mode_ < 0) return init.Error("unknown mode '" + mode + "'");
    if (n.has_attr("pool_strings"))
      return Unsupported(n.Describe() + ": string n-gram pools are not supported");
    std::vector<int64_t> pool = n.attr_ints("pool_int64s"), counts = n.attr_ints("ngram_counts");
    std::vector<int64_t> indexes = n.attr_ints("ngram_indexes");
    k->weights_ = n.attr_floats("weights");
    if (k->min_n_ < 1 || k->max_n_ < k->min_n_ || k->max_skip_ < 0)
      return init.Error("invalid gram lengths or skip count");
    int64_t id = 0;
    for (size_t g = 0; g < counts.size(); ++g) {
      const int64_t len = static_cast<int64_t>(g) + 1;
      const int64_t begin = counts[g],
                    end = g + 1 < counts.size() ? counts[g + 1] : static_cast<int64_t>(pool.size());
      if (begin < 0 || end > static_cast<int64_t>(pool.size()) || begin > end ||
          (end - begin) % len != 0)
        return init.Error("ngram_counts do not partition pool_int64s");
      for (int64_t p = begin; p < end; p += len, ++id) {
        if (id >= static_cast<int64_t>(indexes.size()))
          return init.Error("ngram_indexes is shorter than the pool");
        k->grams_[std::vector<int64_t>(pool.begin() + p, pool.begin() + p + len)] =
            indexes[static_cast<size_t>(id)];
        k->width_ = std::max(k->width_, indexes[static_cast<size_t>(id)] + 1);
      }
    }
    return std::unique_ptr<Kernel>(std::move(k));
  }

  Status Run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    if (x.rank() < 1 || x.rank() > 2) return ctx.Error("input must be [C] or [N, C]");
    PX_ASSIGN_OR_RETURN(std::vector<int64_t> ids, ReadInt64s(x));
    const int64_t rows = x.rank() == 2 ? x.dim(0) : 1, cols = x.shape().back();
    PX_ASSIGN_OR_RETURN(
        Tensor * y,
        ctx.Output(0, DType::kFloat32, x.rank() == 2 ? Shape{rows, width_} : Shape{width_}));
    float* out = y->data<float>();
    std::fill(out, out + y->numel(), 0.f);
    std::vector<int64_t> key;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t* row = ids.data() + r * cols;
      float* counts = out + r * width_;
      for (int64_t n = min_n_; n <= max_n_; ++n)
        for (int64_t skip = 0; skip <= (n == 1 ? 0 : max_skip_); ++skip)
          for (int64_t start = 0; start + (n - 1) * (skip + 1) < cols; ++start) {
            key.clear();
            for (int64_t j = 0; j < n; ++j) key.push_back(row[start + j * (skip + 1)]);
            auto it = grams_.find(key);
            if (it != grams_.end()) counts[it->second] += 1;
          }
      for (int64_t i = 0; i < width_; ++i) {
        float w = static_cast<size_t>(i) < weights_.size() ? weights_[static_cast<size_t>(i)] : 1.f;
        if (mode_ == 1)
          counts[i] = counts[i] > 0 ? w : 0.f;
        else if (mode_ == 2)
          counts[i] *= w;
      }
    }
    return Status::Ok();
  }

 private:
  int64_t min_n_ = 1, max_n_ = 1, max_skip_ = 0, width_ = 0;
  int mode_ = 0;
  std::vector<float> weights_;
  std::map<std::vector<int64_t>, int64_t> grams_;
};

}  // namespace

void RegisterTextOps(OpRegistry& r) { r.Register("", "TfIdfVectorizer", TfIdfVectorizer::Create); }

}  // namespace parallax
