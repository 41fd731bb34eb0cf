// The `parallax` CLI subcommands (one source file each).
#ifndef PARALLAX_TOOLS_PARALLAX_COMMANDS_H_
#define PARALLAX_TOOLS_PARALLAX_COMMANDS_H_

#include <string>
#include <vector>

#include "parallax/inputs.h"
#include "parallax/session.h"

namespace CLI {
class App;
}

namespace parallax::cli {

// Prints the summary; writes the branch DAG as Graphviz dot to `dot_path`
// unless it is empty. `free_dims` (--free-dim SYMBOL=N) fixes symbolic input
// dims before shape inference.
int RunInspect(const std::string& model_path, const std::string& dot_path,
               const std::vector<std::string>& free_dims);

// Scheduling and memory flags shared by `run` and `bench`.
struct ExecFlags {
  std::string mode = "dataflow";  // sequential | layers | dataflow.
  int64_t memory_budget = 0;      // Bytes; 0 = from the OS, -1 = unlimited.
  std::string trace;              // Chrome/Perfetto trace JSON path.
  double max_plan_ratio = 1.15;   // Dataflow plan bytes / best sequential plan bytes.
  int spin_us = 50;               // Idle threads poll this long before sleeping.
  bool no_in_place = false;       // Every output gets its own bytes.
};
void AddExecFlags(CLI::App* app, ExecFlags* f);
// Applies `f` to `opts`; fails on an unknown mode.
Status ApplyExecFlags(const ExecFlags& f, SessionOptions* opts);

struct BenchFlags {
  ExecFlags exec;
  int warmup = 3, runs = 20, threads = 1;
  bool profile = false;    // Per-node times, work, critical path, lower bound.
  bool no_layout = false;  // Load without the channels-last layout pass.
  bool no_fusion = false;  // Load without operator fusions.
  std::string json;
};
int RunBench(const std::string& model_path, const InputFlags& in, const BenchFlags& flags);

struct ConformanceFlags {
  std::vector<std::string> dirs;
  std::string known_failures;  // Checked-in list: "name<TAB>reason" lines.
  std::string write_failures;  // Writes the current failures in that format.
  int min_pass = 0;            // Exit 1 when fewer tests pass.
  int jobs = 1;
  double timeout_s = 120;
  bool verbose = false;
};
int RunConformance(const ConformanceFlags& flags);

}  // namespace parallax::cli

#endif  // PARALLAX_TOOLS_PARALLAX_COMMANDS_H_
