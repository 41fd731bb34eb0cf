// parallax_micro: kernel micro-benchmarks on shapes from the model zoo.
//
//   parallax_micro [--threads=1,2] [--benchmark_filter=REGEX] [other --benchmark_* flags]
//
// --threads lists the intra-op thread counts every case runs at (default
// 1,2). Exits 1 when a kernel failed to create or run.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernel_bench.h"

namespace {

// Parses "1,2,4"; empty on malformed input.
std::vector<int> ParseThreads(const std::string& list) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(pos, end - pos);
    char* rest = nullptr;
    const long v = std::strtol(item.c_str(), &rest, 10);
    if (item.empty() || *rest != '\0' || v < 1 || v > 1024) return {};
    out.push_back(static_cast<int>(v));
    pos = end + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> threads = {1, 2};
  // Take out --threads=LIST before Google Benchmark parses the rest.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--threads=", 0) == 0) {
      threads = ParseThreads(arg.substr(10));
      if (threads.empty()) {
        std::fprintf(stderr, "parallax_micro: bad %s (want e.g. --threads=1,2)\n", argv[i]);
        return 2;
      }
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  for (const auto& c : parallax::micro::NnCases()) parallax::micro::Register(c, threads);
  for (const auto& c : parallax::micro::ElementwiseCases()) parallax::micro::Register(c, threads);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (parallax::micro::AnyCaseFailed()) {
    std::fprintf(stderr, "parallax_micro: some kernels failed (see error_message above)\n");
    return 1;
  }
  return 0;
}
