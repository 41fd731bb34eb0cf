// --mode, --memory-budget, --max-plan-ratio, --spin-us, --no-in-place and --trace for `run`
// and `bench`.
#include <CLI/CLI.hpp>

#include "parallax/commands.h"

namespace parallax::cli {

void AddExecFlags(CLI::App* app, ExecFlags* f) {
  app->add_option("--mode", f->mode,
                  "Schedule: sequential (one op at a time, intra-op over all threads), layers "
                  "(the paper's layer-synchronous branches) or dataflow (branches as soon as "
                  "ready, idle threads help large ops)")
      ->check(CLI::IsMember({"sequential", "layers", "dataflow"}))
      ->default_val("dataflow");
  app->add_option(
         "--memory-budget", f->memory_budget,
         "Activation memory budget in bytes: > 0 this many, 0 from the OS "
         "(MemAvailable minus a safety margin, re-read per run, at most once per ms), -1 unlimited")
      ->default_val(0);
  app->add_option("--max-plan-ratio", f->max_plan_ratio,
                  "Dataflow: activation plan at most this many times the best sequential plan; "
                  "beyond it branches are serialised (>= 1)")
      ->default_val(1.15);
  app->add_option("--spin-us", f->spin_us,
                  "Microseconds a thread that ran out of work polls for more before it sleeps "
                  "(0: sleep at once)")
      ->check(CLI::NonNegativeNumber)
      ->default_val(50);
  app->add_flag("--no-in-place", f->no_in_place,
                "Give every output its own bytes (by default elementwise ops, Softmax and "
                "LayerNorm write over an input nothing reads afterwards), for differential "
                "testing and memory A/B");
  app->add_option("--trace", f->trace,
                  "Write a Chrome/Perfetto trace (one track per worker, a slice per op, an "
                  "activation-bytes counter) of one run to this JSON file");
}

Status ApplyExecFlags(const ExecFlags& f, SessionOptions* opts) {
  PX_ASSIGN_OR_RETURN(opts->mode, ParseExecutionMode(f.mode));
  if (f.memory_budget < -1)
    return InvalidArgument("--memory-budget must be > 0, 0 (from the OS) or -1 (unlimited)");
  opts->memory_budget_bytes = f.memory_budget;
  opts->max_plan_ratio = f.max_plan_ratio;
  opts->spin_us = f.spin_us;
  opts->in_place = !f.no_in_place;
  return Status::Ok();
}

}  // namespace parallax::cli
