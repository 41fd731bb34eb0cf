// parallax: command-line front end (run, bench, inspect, conformance).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "io/npy.h"
#include "onnx/tensor_proto.h"
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
  app->add_option("--free-dim", f->free_dims,
                  "SYMBOL=N: fix a symbolic input dimension at load (ONNX Runtime's free "
                  "dimension override; repeatable): every shape that follows from the inputs "
                  "is then known before the first run, so a memory budget below the leanest "
                  "plan can split the graph on the first run; inputs of another size are "
                  "rejected");
}

int CmdRun(const std::string& model_path, const InputFlags& in, const std::string& out_dir,
           const std::string& format, int threads, bool no_layout, bool no_fusion,
           const ExecFlags& exec) {
  LoadOptions lo;
  lo.layout = !no_layout;
  lo.fusion = !no_fusion;
  if (Status s = ParseFreeDims(in, &lo); !s.ok()) return Fail(s);
  Result<Model> model = Model::Load(model_path, lo);
  if (!model.ok()) return Fail(model.status());
  Result<Session::NamedTensors> inputs = BuildInputs(*model, in);
  if (!inputs.ok()) return Fail(inputs.status());
  SessionOptions opts;
  opts.threads = threads;
  if (Status s = ApplyExecFlags(exec, &opts); !s.ok()) return Fail(s);
  Result<Session> session = Session::Create(*model, opts);
  if (!session.ok()) return Fail(session.status());
  if (!exec.trace.empty()) session->StartTrace();
  Result<std::vector<Tensor>> outputs = session->Run(*inputs);
  if (!outputs.ok()) return Fail(outputs.status());
  if (!exec.trace.empty()) {
    if (Status s = session->WriteTrace(exec.trace); !s.ok()) return Fail(s);
    std::cout << "trace -> " << exec.trace << "\n";
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return Fail(IoError("cannot create output folder '" + out_dir + "': " + ec.message()));
  for (size_t i = 0; i < outputs->size(); ++i) {
    const std::string& name = model->outputs()[i].name;
    std::string path = out_dir + "/" + SanitizeFileName(name) + "." + format;
    Status s = format == "pb" ? WriteTensorProtoFile((*outputs)[i], name, path)
                              : WriteNpy((*outputs)[i], path);
    if (!s.ok()) return Fail(s);
    std::cout << name << ": " << DTypeName((*outputs)[i].dtype()) << " "
              << ShapeToString((*outputs)[i].shape()) << " -> " << path << "\n";
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
  std::string out_format = "npy";
  run->add_option("--out", out_dir, "Folder for <output name>.<format> files")->default_val("out");
  run->add_option("--format", out_format, "Output file format: npy or pb (ONNX TensorProto)")
      ->check(CLI::IsMember({"npy", "pb"}))
      ->default_val("npy");
  run->add_option("--threads", run_threads, "Worker threads")->default_val(1);
  bool run_no_layout = false;
  run->add_flag("--no-layout", run_no_layout,
                "Keep every activation NCHW (skip the channels-last layout pass)");
  bool run_no_fusion = false;
  run->add_flag("--no-fusion", run_no_fusion,
                "Load without operator fusions (differential testing against fused runs)");
  ExecFlags run_exec;
  AddExecFlags(run, &run_exec);

  BenchFlags bf;
  CLI::App* bench = app.add_subcommand("bench", "Measure latency and memory of a model");
  bench->add_option("model", model, "Path to the .onnx model")->required();
  AddInputFlags(bench, &bench_in);
  bench->add_option("--warmup", bf.warmup, "Untimed runs first")->default_val(3);
  bench->add_option("--runs", bf.runs, "Timed runs")->default_val(20);
  bench->add_option("--threads", bf.threads, "Worker threads")->default_val(1);
  bench->add_option("--json", bf.json, "Also write the results as JSON to this file");
  bench->add_flag("--no-layout", bf.no_layout,
                  "Keep every activation NCHW (skip the channels-last layout pass)");
  bench->add_flag("--profile", bf.profile,
                  "Time each node; report work, critical path and the lower bound max(C, W/T)");
  bench->add_flag("--no-fusion", bf.no_fusion, "Load without operator fusions");
  AddExecFlags(bench, &bf.exec);

  CLI::App* inspect = app.add_subcommand("inspect", "Print a model's graph summary");
  inspect->add_option("model", model, "Path to the .onnx model")->required();
  std::string dot_path;
  std::vector<std::string> inspect_free_dims;
  inspect->add_option("--free-dim", inspect_free_dims,
                      "SYMBOL=N: fix a symbolic input dimension before shape inference "
                      "(repeatable), to see the shapes it implies");
  inspect->add_option("--dot", dot_path,
                      "Also write the branch DAG (branches, layers, parallel layers) as "
                      "Graphviz dot to this file");

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
  if (run->parsed())
    return CmdRun(model, run_in, out_dir, out_format, run_threads, run_no_layout, run_no_fusion,
                  run_exec);
  if (bench->parsed()) return RunBench(model, bench_in, bf);
  if (inspect->parsed()) return RunInspect(model, dot_path, inspect_free_dims);
  if (conf->parsed()) return RunConformance(cf);
  return 1;
}
