// parallax: command-line front end (run, bench, inspect, conformance).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "io/npy.h"
#include "parallax/commands.h"
#include "parallax/parallax.h"

namespace parallax::cli {
namespace {

int Fail(const Status& s) {
  std::cerr << "error: " << s.ToString() << "\n";
  return 1;
}

void AddInputFlags(CLI::App* app, InputFlags* f) {
  app->add_option("--input", f->inputs,
                  "NAME=FILE: input tensor from .npy or ONNX TensorProto .pb (repeatable)");
  app->add_flag("--random-inputs", f->random,
                "Fill inputs not given by --input with random values");
  app->add_option("--seed", f->seed, "Seed for --random-inputs")->default_val(0);
  app->add_option("--dim", f->dims,
                  "SYMBOL=N: size of a symbolic input dimension (repeatable; default 1)");
  app->add_option("--shape", f->shapes, "NAME=D0,D1,...: shape of a random input (repeatable)");
}

int64_t PeakRssBytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

int CmdRun(const std::string& model_path, const InputFlags& in, const std::string& out_dir,
           int threads) {
  Result<Model> model = Model::Load(model_path);
  if (!model.ok()) return Fail(model.status());
  Result<Session::NamedTensors> inputs = BuildInputs(*model, in);
  if (!inputs.ok()) return Fail(inputs.status());
  SessionOptions opts;
  opts.threads = threads;
  Result<Session> session = Session::Create(*model, opts);
  if (!session.ok()) return Fail(session.status());
  Result<std::vector<Tensor>> outputs = session->Run(*inputs);
  if (!outputs.ok()) return Fail(outputs.status());
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return Fail(IoError("cannot create output folder '" + out_dir + "': " + ec.message()));
  for (size_t i = 0; i < outputs->size(); ++i) {
    const std::string& name = model->outputs()[i].name;
    std::string path = out_dir + "/" + SanitizeFileName(name) + ".npy";
    Status s = WriteNpy((*outputs)[i], path);
    if (!s.ok()) return Fail(s);
    std::cout << name << ": " << DTypeName((*outputs)[i].dtype()) << " "
              << ShapeToString((*outputs)[i].shape()) << " -> " << path << "\n";
  }
  return 0;
}

struct BenchFlags {
  int warmup = 3, runs = 20, threads = 1;
  std::string json;
};

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

int CmdBench(const std::string& model_path, const InputFlags& in, const BenchFlags& bf) {
  if (bf.runs < 1) return Fail(InvalidArgument("--runs must be >= 1"));
  Result<Model> model = Model::Load(model_path);
  if (!model.ok()) return Fail(model.status());
  Result<Session::NamedTensors> inputs = BuildInputs(*model, in);
  if (!inputs.ok()) return Fail(inputs.status());
  SessionOptions opts;
  opts.threads = bf.threads;
  Result<Session> session = Session::Create(*model, opts);
  if (!session.ok()) return Fail(session.status());
  std::cerr << "bench: " << bf.warmup << " warm-up + " << bf.runs << " timed runs of " << model_path
            << "\n";
  for (int i = 0; i < bf.warmup; ++i) {
    Result<std::vector<Tensor>> r = session->Run(*inputs);
    if (!r.ok()) return Fail(r.status());
  }
  std::vector<double> ms;
  size_t planned = 0, measured = 0;
  for (int i = 0; i < bf.runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Result<std::vector<Tensor>> r = session->Run(*inputs);
    auto t1 = std::chrono::steady_clock::now();
    if (!r.ok()) return Fail(r.status());
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    RunStats st = session->last_stats();
    planned = std::max(planned, st.planned_activation_bytes);
    measured = std::max(measured, st.measured_activation_bytes);
  }
  nlohmann::json j;
  j["model"] = model_path;
  j["latency_ms"] = {{"min", Percentile(ms, 0)},
                     {"median", Percentile(ms, 0.5)},
                     {"p90", Percentile(ms, 0.9)},
                     {"max", Percentile(ms, 1)}};
  j["peak_activation_bytes"] = planned;  // Arena the memory plan reserves.
  j["measured_peak_activation_bytes"] = measured;
  j["peak_rss_bytes"] = PeakRssBytes();
  j["threads"] = bf.threads;
  j["nodes"] = model->node_count();
  j["runs"] = bf.runs;
  j["warmup"] = bf.warmup;
  std::printf("model        %s\n", model_path.c_str());
  std::printf("nodes        %lld\n", static_cast<long long>(model->node_count()));
  std::printf("threads      %d\n", bf.threads);
  std::printf("latency ms   min %.3f  median %.3f  p90 %.3f  max %.3f  (%d runs)\n",
              Percentile(ms, 0), Percentile(ms, 0.5), Percentile(ms, 0.9), Percentile(ms, 1),
              bf.runs);
  std::printf("activations  planned %zu bytes, measured peak %zu bytes\n", planned, measured);
  std::printf("peak RSS     %lld bytes\n", static_cast<long long>(PeakRssBytes()));
  if (!bf.json.empty()) {
    std::ofstream f(bf.json);
    if (!f) return Fail(IoError("cannot write '" + bf.json + "'"));
    f << j.dump(2) << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace parallax::cli

int main(int argc, char** argv) {
  using namespace parallax::cli;
  CLI::App app{"parallax: run ONNX models fast on edge CPUs and accelerators"};
  app.require_subcommand(1);

  std::string model;
  InputFlags run_in, bench_in;
  std::string out_dir = "out";
  int run_threads = 1;
  CLI::App* run = app.add_subcommand("run", "Run a model once and write its outputs as .npy");
  run->add_option("model", model, "Path to the .onnx model")->required();
  AddInputFlags(run, &run_in);
  run->add_option("--out", out_dir, "Folder for <output name>.npy files")->default_val("out");
  run->add_option("--threads", run_threads, "Worker threads")->default_val(1);

  BenchFlags bf;
  CLI::App* bench = app.add_subcommand("bench", "Measure latency and memory of a model");
  bench->add_option("model", model, "Path to the .onnx model")->required();
  AddInputFlags(bench, &bench_in);
  bench->add_option("--warmup", bf.warmup, "Untimed runs first")->default_val(3);
  bench->add_option("--runs", bf.runs, "Timed runs")->default_val(20);
  bench->add_option("--threads", bf.threads, "Worker threads")->default_val(1);
  bench->add_option("--json", bf.json, "Also write the results as JSON to this file");

  CLI::App* inspect = app.add_subcommand("inspect", "Print a model's graph summary");
  inspect->add_option("model", model, "Path to the .onnx model")->required();

  ConformanceFlags cf;
  CLI::App* conf = app.add_subcommand(
      "conformance", "Run ONNX backend test folders (model.onnx + test_data_set_*)");
  conf->add_option("dirs", cf.dirs, "Test folders, or folders of test folders")->required();
  conf->add_option("--known-failures", cf.known_failures,
                   "File of expected failures (name<TAB>reason)");
  conf->add_option("--write-failures", cf.write_failures, "Write this run's failures to a file");
  conf->add_option("--min-pass", cf.min_pass, "Exit with status 1 if fewer tests pass");
  conf->add_option("--jobs,-j", cf.jobs, "Tests run in parallel (each in its own process)")
      ->default_val(1);
  conf->add_option("--timeout", cf.timeout_s, "Seconds allowed per test")->default_val(120);
  conf->add_flag("--verbose,-v", cf.verbose, "Print every test's result");

  CLI11_PARSE(app, argc, argv);
  if (run->parsed()) return CmdRun(model, run_in, out_dir, run_threads);
  if (bench->parsed()) return CmdBench(model, bench_in, bf);
  if (inspect->parsed()) return RunInspect(model);
  if (conf->parsed()) return RunConformance(cf);
  return 1;
}
