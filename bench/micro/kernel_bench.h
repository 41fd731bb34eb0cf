// Kernel micro-benchmarks: one node of a real model, run through the CPU
// kernel registry exactly as the executor runs it.
//
// A KernelCase describes one node (op, attributes, input shapes). The harness
// builds a one-node graph whose constant inputs (weights, biases) are graph
// constants, so the kernel sees them at creation and takes its pre-packed
// path; creates the kernel with the session's IntraOp (a ThreadPool of T
// threads, as Session::Create makes); runs it once untimed (primitive
// creation, weight reorder, first touch of the output buffers), then times
// Kernel::Run with a KernelContext whose IntraOp is set as the executor sets
// it. Outputs go to buffers reused across runs, like the executor's planned
// arena slots, so the timing holds no allocation or page faults.
#ifndef PARALLAX_BENCH_MICRO_KERNEL_BENCH_H_
#define PARALLAX_BENCH_MICRO_KERNEL_BENCH_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "parallax/tensor.h"

namespace parallax::micro {

// One node input. Constant inputs are graph constants (kernel-creation time);
// the others are fed per run. Values are seeded uniform in [low, high).
struct InputSpec {
  Shape shape;
  bool constant = false;
  float low = -1.f, high = 1.f;
};

struct KernelCase {
  std::string name;     // "<Op>/<where it comes from>_<shape>", unique.
  std::string op_type;  // Default ONNX domain.
  int opset = 17;
  std::vector<InputSpec> inputs;
  std::map<std::string, Attribute> attrs;
  int num_outputs = 1;
  double flops = 0;  // Floating-point operations per run; > 0 adds a flops rate.
  double items = 0;  // Elements per run; > 0 adds items/s and bytes/s (all
                     // non-constant inputs and outputs once each).
};

// Registers `c` with Google Benchmark once per thread count in `threads`
// (argument "threads"), timed in wall-clock time.
void Register(const KernelCase& c, const std::vector<int>& threads);

// True once any registered case failed to create or run its kernel.
bool AnyCaseFailed();

// Case tables (nn_cases.cc, elementwise_cases.cc).
std::vector<KernelCase> NnCases();
std::vector<KernelCase> ElementwiseCases();

}  // namespace parallax::micro

#endif  // PARALLAX_BENCH_MICRO_KERNEL_BENCH_H_
