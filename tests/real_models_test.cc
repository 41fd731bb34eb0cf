// Real pretrained models (fetched from npm by scripts/fetch_models.sh) must
// match ONNX Runtime 1.30 (onnxruntime-node, run by tools/ort_ref/ort_ref.js)
// within 1e-4 absolute + 1e-4 relative on identical inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include "io/npy.h"
#include "parallax/parallax.h"

namespace fs = std::filesystem;

namespace parallax {
namespace {

struct InputSpec {
  std::string name;
  DType dtype;
  Shape shape;
  float lo = 0, hi = 1;  // Uniform range for floats.
  int64_t int_value = 0;
};

std::string CacheDir() {
  const char* env = std::getenv("PARALLAX_CACHE");
  return env ? env : std::string(PARALLAX_SOURCE_DIR) + "/.cache";
}

Tensor MakeInput(const InputSpec& spec, std::mt19937& rng) {
  Tensor t = Tensor::Empty(spec.dtype, spec.shape);
  if (spec.dtype == DType::kFloat32) {
    std::uniform_real_distribution<float> u(spec.lo, spec.hi);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  } else if (spec.dtype == DType::kInt64) {
    for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = spec.int_value;
  }
  return t;
}

void ExpectClose(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  if (got.dtype() == DType::kInt64) {  // Indices, classes: exactly.
    for (int64_t i = 0; i < want.numel(); ++i)
      ASSERT_EQ(got.data<int64_t>()[i], want.data<int64_t>()[i]) << what << " at " << i;
    return;
  }
  ASSERT_EQ(got.dtype(), DType::kFloat32) << what;
  double worst = 0;
  int64_t bad = 0, first_bad = -1;
  for (int64_t i = 0; i < want.numel(); ++i) {
    double g = got.data<float>()[i], w = want.data<float>()[i];
    double err = std::fabs(g - w);
    worst = std::max(worst, err);
    if (!(err <= 1e-4 + 1e-4 * std::fabs(w))) {
      if (first_bad < 0) first_bad = i;
      ++bad;
    }
  }
  std::printf("%s: %lld elements, max abs error %.3g\n", what.c_str(),
              static_cast<long long>(want.numel()), worst);
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << want.numel()
                    << " elements differ; first at " << first_bad << ", max abs error " << worst;
}

// Runs `model` with Parallax (on 1-4 threads in every schedule, twice each:
// the first run plans memory, the second uses the plan; dataflow also with
// in-place writes off) and with ONNX Runtime on the same inputs: sequential
// outputs on 1 and 3 threads must match ONNX Runtime, and every schedule
// must give the sequential run's exact bits.
void CompareWithOrt(const std::string& model_file, const std::vector<InputSpec>& specs,
                    uint32_t seed) {
  std::string model = CacheDir() + "/models/" + model_file;
  ASSERT_TRUE(fs::exists(model)) << model << " missing: run scripts/fetch_models.sh";
  fs::path dir =
      fs::temp_directory_path() / ("parallax_real_" + model_file + "_" + std::to_string(seed));
  fs::remove_all(dir);
  fs::create_directories(dir / "ort");
  std::mt19937 rng(seed);
  Session::NamedTensors inputs;
  std::string cmd = "node " + std::string(PARALLAX_SOURCE_DIR) + "/tools/ort_ref/ort_ref.js " +
                    model + " " + (dir / "ort").string();
  for (const InputSpec& spec : specs) {
    Tensor t = MakeInput(spec, rng);
    std::string file = (dir / (spec.name + ".npy")).string();
    ASSERT_TRUE(WriteNpy(t, file).ok());
    cmd += " " + spec.name + "=" + file;
    inputs.emplace_back(spec.name, t);
  }
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "ONNX Runtime reference failed: " << cmd;

  Result<Model> m = Model::Load(model);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  for (int threads : {1, 2, 3, 4}) {
    std::vector<Tensor> reference;  // Sequential at this thread count.
    for (int config = 0; config < 4; ++config) {
      const ExecutionMode mode = config == 0   ? ExecutionMode::kSequential
                                 : config == 2 ? ExecutionMode::kLayers
                                               : ExecutionMode::kDataflow;
      SessionOptions options;
      options.threads = threads;
      options.mode = mode;
      options.in_place = config != 3;
      Result<Session> s = Session::Create(*m, options);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      const std::string what = model_file + " threads " + std::to_string(threads) + " mode " +
                               ExecutionModeName(mode) + (options.in_place ? "" : " no in-place");
      for (int run = 0; run < 2; ++run) {
        Result<std::vector<Tensor>> out = s->Run(inputs);
        ASSERT_TRUE(out.ok()) << out.status().ToString();
        ASSERT_EQ(out->size(), m->outputs().size());
        if (mode == ExecutionMode::kSequential && run == 0) reference = *out;
        for (size_t i = 0; i < out->size(); ++i) {
          // Every schedule computes the sequential executor's exact bits.
          const Tensor& got = (*out)[i];
          const Tensor& want_bits = reference[i];
          ASSERT_EQ(got.shape(), want_bits.shape()) << what;
          EXPECT_EQ(std::memcmp(got.raw_data(), want_bits.raw_data(), got.nbytes()), 0)
              << what << " run " << run << " output " << i << " differs from sequential";
        }
        if (mode != ExecutionMode::kSequential || (threads != 1 && threads != 3)) continue;
        for (size_t i = 0; i < out->size(); ++i) {
          std::string name = m->outputs()[i].name;
          for (char& c : name)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
              c = '_';
          Result<Tensor> want = ReadNpy((dir / "ort" / (name + ".npy")).string());
          ASSERT_TRUE(want.ok()) << want.status().ToString();
          ExpectClose((*out)[i], *want,
                      model_file + " vs ONNX Runtime, output '" + m->outputs()[i].name +
                          "' threads " + std::to_string(threads) + " run " + std::to_string(run));
        }
        if (run == 1) {
          EXPECT_GT(s->last_stats().planned_activation_bytes, 0u)
              << "second run should use a memory plan";
        }
      }
    }
  }
  fs::remove_all(dir);
}

TEST(RealModels, PPOCRv4Det) {
  CompareWithOrt("ppocr_v4_det.onnx", {{"x", DType::kFloat32, {1, 3, 640, 640}, -1, 1}}, 1);
}

TEST(RealModels, PPOCRMobileV2Cls) {
  CompareWithOrt("ppocr_mobile_v2_cls.onnx", {{"x", DType::kFloat32, {3, 3, 48, 192}, -1, 1}}, 2);
}

std::vector<InputSpec> VadInputs(int64_t batch, int64_t samples, int64_t sr) {
  return {{"input", DType::kFloat32, {batch, samples}, -0.5f, 0.5f},
          {"sr", DType::kInt64, {}, 0, 0, sr},
          {"h", DType::kFloat32, {2, batch, 64}, -0.1f, 0.1f},
          {"c", DType::kFloat32, {2, batch, 64}, -0.1f, 0.1f}};
}

TEST(RealModels, SileroVadLegacy16k) {
  CompareWithOrt("silero_vad_legacy.onnx", VadInputs(1, 512, 16000), 3);
}
TEST(RealModels, SileroVadLegacy8k) {
  CompareWithOrt("silero_vad_legacy.onnx", VadInputs(1, 256, 8000), 4);
}
TEST(RealModels, SileroVadLegacyBatchAndLength) {
  CompareWithOrt("silero_vad_legacy.onnx", VadInputs(2, 1536, 16000), 5);
}

int64_t RssBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  long long pages = 0, resident = 0;
  if (f != nullptr) {
    if (std::fscanf(f, "%lld %lld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * 4096;
}

// Dynamic shapes on a real transformer: 600 dataflow runs with sequence
// lengths drawn from 1..48 (48 signatures, each planned once and then
// reused); resident memory after the first 200 runs must stay flat.
TEST(RealModels, DistilbertRssFlatOverVaryingLengths) {
  const std::string model = CacheDir() + "/zoo/distilbert_sst2.onnx";
  if (!fs::exists(model)) GTEST_SKIP() << model << " missing: run scripts/make_zoo.sh";
  Result<Model> m = Model::Load(model);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  SessionOptions options;
  options.threads = 2;
  Result<Session> s = Session::Create(*m, options);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::mt19937 rng(3);
  int64_t rss_after_warmup = 0;
  for (int run = 0; run < 600; ++run) {
    const int64_t len = 1 + static_cast<int64_t>(rng() % 48);
    Tensor ids = Tensor::Empty(DType::kInt64, {1, len});
    Tensor mask = Tensor::Empty(DType::kInt64, {1, len});
    for (int64_t i = 0; i < len; ++i) {
      ids.data<int64_t>()[i] = static_cast<int64_t>(rng() % 30522);
      mask.data<int64_t>()[i] = 1;
    }
    Result<std::vector<Tensor>> out = s->Run({{"input_ids", ids}, {"attention_mask", mask}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_EQ((*out)[0].shape(), (Shape{1, 2}));
    if (run == 199) rss_after_warmup = RssBytes();
  }
  const int64_t growth = RssBytes() - rss_after_warmup;
  std::printf("distilbert: RSS %lld MiB after 200 runs, growth %lld KiB over the next 400\n",
              static_cast<long long>(rss_after_warmup >> 20), static_cast<long long>(growth >> 10));
// ASan's quarantine and TSan's shadow keep freed memory resident.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  EXPECT_LT(growth, int64_t{32} << 20) << "RSS grew " << growth << " bytes over 400 runs";
#endif
}

// A budget of 60% of the free plan is below any schedule of these models:
// the session runs a memory-split copy within the budget, on the first
// (unplanned) and later runs, with outputs equal to the free run's to
// rounding. `free_dims` fixes symbolic input dims, so the first run knows
// every shape.
void RunsUnderSixtyPercentBudget(const std::string& model, const Session::NamedTensors& inputs,
                                 const std::map<std::string, int64_t>& free_dims = {}) {
  if (!fs::exists(model)) GTEST_SKIP() << model << " missing: run scripts/setup.sh / make_zoo.sh";
  Result<Model> m = Model::Load(model);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  SessionOptions options;
  options.threads = 2;
  Result<Session> free = Session::Create(*m, options);
  ASSERT_TRUE(free.ok()) << free.status().ToString();
  ASSERT_TRUE(free->Run(inputs).ok());
  Result<std::vector<Tensor>> want = free->Run(inputs);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  const RunStats fs = free->last_stats();
  options.memory_budget_bytes = static_cast<int64_t>(fs.planned_activation_bytes * 6 / 10);
  ASSERT_LT(static_cast<size_t>(options.memory_budget_bytes), fs.sequential_plan_bytes);
  LoadOptions lo;
  lo.free_dims = free_dims;
  Result<Model> fixed = Model::Load(model, lo);
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  Result<Session> tight = Session::Create(*fixed, options);
  ASSERT_TRUE(tight.ok()) << tight.status().ToString();
  for (int rep = 0; rep < 2; ++rep) {
    Result<std::vector<Tensor>> got = tight->Run(inputs);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    const RunStats st = tight->last_stats();
    std::printf(
        "%s, budget %lld: %d regions in up to %d pieces, measured %zu, planned %zu (free "
        "plan %zu)\n",
        model.c_str(), static_cast<long long>(options.memory_budget_bytes), st.split_regions,
        st.split_pieces, st.measured_activation_bytes, st.planned_activation_bytes,
        fs.planned_activation_bytes);
    EXPECT_GE(st.split_regions, 1);
    EXPECT_LE(st.measured_activation_bytes, static_cast<size_t>(options.memory_budget_bytes));
    EXPECT_LE(st.planned_activation_bytes, static_cast<size_t>(options.memory_budget_bytes));
    for (size_t i = 0; i < want->size(); ++i)
      ExpectClose((*got)[i], (*want)[i], model + " split vs free, output " + std::to_string(i));
  }
}

// Its peak is one [1,6,1500,1500] attention score tensor: head by head.
TEST(RealModels, WhisperEncoderRunsInPiecesUnderSixtyPercentBudget) {
  std::mt19937 rng(5);
  RunsUnderSixtyPercentBudget(
      CacheDir() + "/zoo/whisper_tiny_encoder.onnx",
      {{"mel", MakeInput({"mel", DType::kFloat32, {1, 80, 3000}, -1, 1}, rng)}});
}

// Its peak is a stage-1 window attention: window by window.
TEST(RealModels, SwinV2RunsInPiecesUnderSixtyPercentBudget) {
  std::mt19937 rng(6);
  RunsUnderSixtyPercentBudget(CacheDir() + "/zoo/swinv2_t.onnx",
                              {{"x", MakeInput({"x", DType::kFloat32, {1, 3, 224, 224}}, rng)}});
}

// Three crops: image by image, with its symbolic batch, height and width fixed.
TEST(RealModels, DirectionClassifierRunsInPiecesUnderSixtyPercentBudget) {
  std::mt19937 rng(7);
  RunsUnderSixtyPercentBudget(
      CacheDir() + "/models/ppocr_mobile_v2_cls.onnx",
      {{"x", MakeInput({"x", DType::kFloat32, {3, 3, 48, 192}, -1, 1}, rng)}},
      {{"p2o.DynamicDimension.0", 3},
       {"p2o.DynamicDimension.1", 48},
       {"p2o.DynamicDimension.2", 192}});
}

// One 640x640 image: the backbone and the neck run in bands of image rows
// (windows with halos, the upsampling too), the detection head in runs of
// anchors (its Concat of the three scales along the anchors, each run
// reading only the scales it covers, back through the head convolutions).
TEST(RealModels, YoloV8nRunsInPiecesUnderSixtyPercentBudget) {
  std::mt19937 rng(8);
  RunsUnderSixtyPercentBudget(
      CacheDir() + "/zoo/yolov8n.onnx",
      {{"images", MakeInput({"images", DType::kFloat32, {1, 3, 640, 640}, 0, 1}, rng)}});
}

// `n` token ids in [1, vocab).
Tensor Tokens(int64_t n, int64_t vocab, std::mt19937& rng) {
  Tensor t = Tensor::Empty(DType::kInt64, {1, n});
  std::uniform_int_distribution<int64_t> u(1, vocab - 1);
  for (int64_t i = 0; i < n; ++i) t.data<int64_t>()[i] = u(rng);
  return t;
}

// Its peaks are attention (whole Q, K, V beside the residual stream) and the
// MLP: attention head by head, each head projecting its own Q, K and V from
// its columns of the weights, and the MLP in bands of tokens.
TEST(RealModels, ClipTextRunsInPiecesUnderSixtyPercentBudget) {
  std::mt19937 rng(9);
  RunsUnderSixtyPercentBudget(CacheDir() + "/zoo/clip_text.onnx",
                              {{"input_ids", Tokens(32, 49408, rng)}}, {{"batch", 1}, {"seq", 32}});
}

TEST(RealModels, DistilbertRunsInPiecesUnderSixtyPercentBudget) {
  std::mt19937 rng(10);
  Tensor mask = Tensor::Empty(DType::kInt64, {1, 32});
  for (int64_t i = 0; i < 32; ++i) mask.data<int64_t>()[i] = 1;
  RunsUnderSixtyPercentBudget(CacheDir() + "/zoo/distilbert_sst2.onnx",
                              {{"input_ids", Tokens(32, 30522, rng)}, {"attention_mask", mask}},
                              {{"batch", 1}, {"seq", 32}});
}

}  // namespace
}  // namespace parallax
