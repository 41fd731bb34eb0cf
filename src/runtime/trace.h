// Trace recording for `--trace FILE.json`: op slices per worker thread and an
// activation-memory counter, written as Chrome trace event JSON (opens in
// Perfetto and chrome://tracing).
//
// Output: {"displayTimeUnit":"ns","traceEvents":[...]} with
//   "ph":"M" thread_name metadata "worker N" per worker (tid N);
//   "ph":"X" one per slice: name = node name, cat = "branch B",
//            ts/dur in microseconds (3 decimals), pid 1, tid = worker,
//            args {"op": op type, "branch": B};
//   "ph":"C" "activation bytes" counter samples, args {"bytes": N}.
// Times are nanoseconds since the recorder was constructed (steady_clock).
#ifndef PARALLAX_RUNTIME_TRACE_H_
#define PARALLAX_RUNTIME_TRACE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "parallax/status.h"

namespace parallax {

// Thread-safety: Slice for a given worker index must be called by one thread
// at a time (it takes no lock); different workers may record concurrently.
// Counter takes a mutex and may be called from any thread. ToJson and
// WriteJson must not overlap any recording call.
class TraceRecorder {
 public:
  // `workers` (clamped to >= 1) worker indices 0..workers-1. Reserves room for
  // `reserve_slices` slices (and their names) per worker and as many counter
  // samples per worker, so recording allocates only past that.
  explicit TraceRecorder(int workers, size_t reserve_slices = 1024);

  int workers() const { return static_cast<int>(logs_.size()); }

  // Nanoseconds since construction.
  int64_t NowNs() const;

  // Records that `worker` ran node `name` (op `op_type`, branch `branch`) over
  // [start_ns, end_ns] (NowNs times; end < start is recorded as 0 long).
  // Out-of-range workers are ignored.
  void Slice(int worker, std::string_view name, std::string_view op_type, int branch,
             int64_t start_ns, int64_t end_ns);

  // Records `bytes` of live activations at time t_ns.
  void Counter(int64_t t_ns, int64_t bytes);

  // The trace as JSON text (names escaped; invalid UTF-8 becomes U+FFFD).
  std::string ToJson() const;

  // Writes ToJson() to `path`; the error names the path.
  Status WriteJson(const std::string& path) const;

 private:
  struct SliceRecord {
    int64_t start_ns;
    int64_t end_ns;
    size_t text_offset;  // Name, then op type, in the worker's text.
    uint32_t name_len;
    uint32_t op_len;
    int32_t branch;
  };
  // One cache line apart so workers never share one.
  struct alignas(64) WorkerLog {
    std::vector<SliceRecord> slices;
    std::string text;
  };
  struct CounterSample {
    int64_t t_ns;
    int64_t bytes;
  };

  std::chrono::steady_clock::time_point origin_;
  std::vector<WorkerLog> logs_;
  std::mutex counter_mu_;
  std::vector<CounterSample> counters_;  // Guarded by counter_mu_ while recording.
};

}  // namespace parallax

#endif  // PARALLAX_RUNTIME_TRACE_H_
