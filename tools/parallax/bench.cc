// `parallax bench`: latency percentiles, activation memory, peak RSS and,
// with --profile, per-node times, work, critical path and the lower bound.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "parallax/commands.h"
#include "parallax/parallax.h"

namespace parallax::cli {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kProgressEverySeconds = 5.0;
constexpr size_t kTopNodes = 20;

int Fail(const Status& s) {
  std::cerr << "error: " << s.ToString() << "\n";
  return 1;
}

int64_t PeakRssBytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Prints "bench: <phase> i/n ..." to stderr at most every few seconds, so
// long runs show they are alive without cluttering short ones.
class Progress {
 public:
  Progress() : start_(Clock::now()), last_(start_) {}
  void Tick(const char* phase, int done, int total, const std::vector<double>& ms) {
    Clock::time_point now = Clock::now();
    if (Seconds(last_, now) < kProgressEverySeconds) return;
    last_ = now;
    std::fprintf(stderr, "bench: %s %d/%d (%.0f s elapsed", phase, done, total,
                 Seconds(start_, now));
    if (!ms.empty()) std::fprintf(stderr, ", median so far %.3f ms", Percentile(ms, 0.5));
    std::fprintf(stderr, ")\n");
  }

 private:
  Clock::time_point start_, last_;
};

struct Measured {
  std::vector<double> ms;
  size_t planned = 0, measured = 0, sequential = 0, budget = 0;
  size_t subgraph = 0;      // Arenas subgraph bodies held (most over the timed runs).
  std::string mode;         // Schedule of the last timed run (a budget may force sequential).
  int layer_width = 1;      // Its most branches of one layer at once.
  int split_regions = 0;    // Regions it ran in pieces to fit the budget.
  int split_pieces = 1;     // Most pieces of one chain.
  double first_run_ms = 0;  // The session's first Run (warm-up or timed).
};

Status TimeRuns(Session& session, const Session::NamedTensors& inputs, const BenchFlags& bf,
                Measured* m) {
  Progress progress;
  for (int i = 0; i < bf.warmup; ++i) {
    Clock::time_point t0 = Clock::now();
    PX_RETURN_IF_ERROR(session.Run(inputs).status());
    if (i == 0) m->first_run_ms = 1e3 * Seconds(t0, Clock::now());
    progress.Tick("warm-up", i + 1, bf.warmup, {});
  }
  if (bf.profile) session.ResetProfile();  // Averages cover timed runs only.
  for (int i = 0; i < bf.runs; ++i) {
    Clock::time_point t0 = Clock::now();
    Result<std::vector<Tensor>> r = session.Run(inputs);
    Clock::time_point t1 = Clock::now();
    PX_RETURN_IF_ERROR(r.status());
    m->ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    if (bf.warmup == 0 && i == 0) m->first_run_ms = m->ms[0];
    RunStats st = session.last_stats();
    m->planned = std::max(m->planned, st.planned_activation_bytes);
    m->measured = std::max(m->measured, st.measured_activation_bytes);
    m->sequential = std::max(m->sequential, st.sequential_plan_bytes);
    m->subgraph = std::max(m->subgraph, st.subgraph_arena_bytes);
    m->budget = st.memory_budget_bytes;
    m->mode = ExecutionModeName(st.mode);
    m->layer_width = st.layer_width;
    m->split_regions = st.split_regions;
    m->split_pieces = st.split_pieces;
    progress.Tick("run", i + 1, bf.runs, m->ms);
  }
  return Status::Ok();
}

// Adds profile.{work_ms, critical_path_ms, runs, nodes (top 20)} and
// lower_bound_ms to `j`, and prints the same summary.
void ReportProfile(const Profile& p, int threads, nlohmann::json& j) {
  std::vector<size_t> order(p.nodes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return p.nodes[a].ms > p.nodes[b].ms; });
  if (order.size() > kTopNodes) order.resize(kTopNodes);
  nlohmann::json nodes = nlohmann::json::array();
  for (size_t i : order)
    nodes.push_back({{"name", p.nodes[i].name}, {"op", p.nodes[i].op_type}, {"ms", p.nodes[i].ms}});
  // Per op type: total ms and node count, heaviest first.
  std::map<std::string, std::pair<double, int>> by_op;
  for (const auto& n : p.nodes) {
    by_op[n.op_type].first += n.ms;
    by_op[n.op_type].second += 1;
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> ops(by_op.begin(), by_op.end());
  std::stable_sort(ops.begin(), ops.end(),
                   [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  nlohmann::json op_types = nlohmann::json::array();
  for (const auto& [op, v] : ops)
    op_types.push_back({{"op", op}, {"ms", v.first}, {"count", v.second}});
  const double bound = p.LowerBoundMs(threads);
  j["profile"] = {{"work_ms", p.work_ms},
                  {"op_types", op_types},
                  {"critical_path_ms", p.critical_path_ms},
                  {"critical_path_nodes", p.critical_path.size()},
                  {"runs", p.runs},
                  {"nodes", nodes}};
  j["lower_bound_ms"] = bound;
  std::printf("work W       %.3f ms (sum of single-thread node times)\n", p.work_ms);
  std::printf("critical C   %.3f ms (%zu nodes on the heaviest dependency chain)\n",
              p.critical_path_ms, p.critical_path.size());
  std::printf("lower bound  %.3f ms = max(C, W/%d)\n", bound, threads);
  std::printf("top ops     ");
  for (size_t k = 0; k < ops.size() && k < 6; ++k)
    std::printf(" %s %.3f ms (%d, %.0f%%)%s", ops[k].first.c_str(), ops[k].second.first,
                ops[k].second.second, p.work_ms > 0 ? 100.0 * ops[k].second.first / p.work_ms : 0.0,
                k + 1 < std::min<size_t>(ops.size(), 6) ? "," : "");
  std::printf("\n");
  std::printf("top nodes   ");
  for (size_t k = 0; k < order.size() && k < 5; ++k)
    std::printf(" %s %s %.3f ms%s", p.nodes[order[k]].op_type.c_str(),
                p.nodes[order[k]].name.c_str(), p.nodes[order[k]].ms,
                k + 1 < std::min<size_t>(order.size(), 5) ? "," : "");
  std::printf("\n");
}

}  // namespace

int RunBench(const std::string& model_path, const InputFlags& in, const BenchFlags& bf) {
  if (bf.runs < 1) return Fail(InvalidArgument("--runs must be >= 1"));
  if (bf.warmup < 0) return Fail(InvalidArgument("--warmup must be >= 0"));
  LoadOptions lo;
  lo.layout = !bf.no_layout;
  lo.fusion = !bf.no_fusion;
  if (Status s = ParseFreeDims(in, &lo); !s.ok()) return Fail(s);
  Clock::time_point t0 = Clock::now();
  Result<Model> model = Model::Load(model_path, lo);
  Clock::time_point t1 = Clock::now();
  if (!model.ok()) return Fail(model.status());
  Result<Session::NamedTensors> inputs = BuildInputs(*model, in);
  if (!inputs.ok()) return Fail(inputs.status());
  SessionOptions opts;
  opts.threads = bf.threads;
  opts.profile = bf.profile;
  if (Status s = ApplyExecFlags(bf.exec, &opts); !s.ok()) return Fail(s);
  Clock::time_point t2 = Clock::now();
  Result<Session> session = Session::Create(*model, opts);
  Clock::time_point t3 = Clock::now();
  if (!session.ok()) return Fail(session.status());
  // Load = what a caller waits for before the first Run: parse + optimise
  // (Model::Load) and kernel creation with weight pre-packing (Session::Create).
  // Input building in between is not part of it.
  const double model_ms = 1e3 * Seconds(t0, t1), session_ms = 1e3 * Seconds(t2, t3);
  std::cerr << "bench: " << bf.warmup << " warm-up + " << bf.runs << " timed runs of " << model_path
            << (bf.profile ? " (profiled)" : "") << "\n";
  Measured m;
  Status s = TimeRuns(*session, *inputs, bf, &m);
  if (!s.ok()) return Fail(s);
  const std::vector<double>& ms = m.ms;
  nlohmann::json j;
  j["model"] = model_path;
  j["load_ms"] = model_ms + session_ms;
  j["model_load_ms"] = model_ms;
  j["session_create_ms"] = session_ms;
  j["first_run_ms"] = m.first_run_ms;  // Includes lazy per-shape kernel setup.
  j["latency_ms"] = {{"min", Percentile(ms, 0)},
                     {"median", Percentile(ms, 0.5)},
                     {"p90", Percentile(ms, 0.9)},
                     {"max", Percentile(ms, 1)}};
  j["samples_ms"] = ms;                    // Every timed run, in order.
  j["peak_activation_bytes"] = m.planned;  // Arena the memory plan reserves.
  j["measured_peak_activation_bytes"] = m.measured;
  j["mode"] = bf.exec.mode;  // Requested.
  j["mode_used"] = m.mode;   // Last timed run's schedule.
  j["layer_width_used"] = m.layer_width;
  j["memory_split"] = {{"regions", m.split_regions}, {"max_pieces", m.split_pieces}};
  j["plan"] = {{"peak_bytes", m.planned},
               {"sequential_peak_bytes", m.sequential},
               {"subgraph_bytes", m.subgraph}};
  j["memory_budget_bytes"] = m.budget;  // 0 = unlimited.
  const BranchSummary br = session->branch_summary();
  j["branches"] = br.branches;
  j["layers"] = br.layers;
  j["parallel_layers"] = br.parallel_layers;
  j["max_branch_width"] = br.max_branch_width;
  j["peak_rss_bytes"] = PeakRssBytes();
  j["threads"] = bf.threads;
  j["nodes"] = model->node_count();
  j["inputs"] = nlohmann::json::array();  // As declared (after --free-dim); -1: symbolic.
  for (const TensorInfo& t : model->inputs())
    j["inputs"].push_back({{"name", t.name}, {"dims", t.dims}, {"symbols", t.symbols}});
  j["fusions"] = model->fusions();
  j["runs"] = bf.runs;
  j["warmup"] = bf.warmup;
  std::printf("model        %s\n", model_path.c_str());
  std::printf("nodes        %lld\n", static_cast<long long>(model->node_count()));
  std::printf("fusions     ");
  if (model->fusions().empty()) std::printf(" none%s", bf.no_fusion ? " (--no-fusion)" : "");
  for (const auto& [pass, n] : model->fusions())
    std::printf(" %s %lld", pass.c_str(), static_cast<long long>(n));
  std::printf("\n");
  std::printf("threads      %d, mode %s (last run: %s, branches of a layer at once: %d)\n",
              bf.threads, bf.exec.mode.c_str(), m.mode.c_str(), m.layer_width);
  std::printf("branches     %d in %d layers, %d parallel, max width %d\n", br.branches, br.layers,
              br.parallel_layers, br.max_branch_width);
  std::printf("load ms      %.3f (model load %.3f + session create %.3f), first run %.3f ms\n",
              model_ms + session_ms, model_ms, session_ms, m.first_run_ms);
  std::printf("latency ms   min %.3f  median %.3f  p90 %.3f  max %.3f  (%d runs)\n",
              Percentile(ms, 0), Percentile(ms, 0.5), Percentile(ms, 0.9), Percentile(ms, 1),
              bf.runs);
  std::printf("activations  planned %zu bytes (best sequential plan %zu), measured peak %zu bytes",
              m.planned, m.sequential, m.measured);
  if (m.subgraph > 0) std::printf(", subgraph bodies' arenas %zu", m.subgraph);
  if (m.budget > 0) std::printf(", budget %zu", m.budget);
  if (m.split_regions > 0)
    std::printf(" (%d region(s) of ops split into up to %d pieces to fit it)", m.split_regions,
                m.split_pieces);
  std::printf("\n");
  std::printf("peak RSS     %lld bytes\n", static_cast<long long>(PeakRssBytes()));
  if (bf.profile) {
    Result<Profile> p = session->profile();
    if (!p.ok()) return Fail(p.status());
    ReportProfile(*p, bf.threads, j);
  }
  if (!bf.exec.trace.empty()) {  // One extra, traced run: timed runs stay untraced.
    session->StartTrace();
    if (Status ts = session->Run(*inputs).status(); !ts.ok()) return Fail(ts);
    if (Status ts = session->WriteTrace(bf.exec.trace); !ts.ok()) return Fail(ts);
    std::printf("trace        %s\n", bf.exec.trace.c_str());
  }
  if (!bf.json.empty()) {
    std::ofstream f(bf.json);
    if (!f) return Fail(IoError("cannot write '" + bf.json + "'"));
    f << j.dump(2) << "\n";
  }
  return 0;
}

}  // namespace parallax::cli
