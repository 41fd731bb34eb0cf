// ThreadPool: the runtime's own worker threads, owned by a session and shared
// by everything that runs in parallel inside it (intra-op tiles today, the
// branch scheduler next). No other library threads run kernels: oneDNN is
// pinned to one OpenMP thread per calling thread (dnnl_util.h).
//
//   ThreadPool pool(4);                       // the caller + 3 workers
//   pool.ParallelFor(n, 4, [&](int64_t i) { ... });
//
// Idle workers sleep on a condition variable (no spinning). ParallelFor does
// not allocate. Thread safety: ParallelFor may be called from several threads
// at once (each call is an independent job); a call made from inside a task
// runs inline on that thread, so nesting never deadlocks.
#ifndef PARALLAX_CORE_THREAD_POOL_H_
#define PARALLAX_CORE_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace parallax {

class ThreadPool {
 public:
  // `num_threads` counts the calling thread: num_threads - 1 workers start.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(i) once for every i in [0, n) and returns when all calls have
  // finished. The calling thread takes part; at most max_threads - 1 idle
  // workers join. Which thread runs which i is unspecified, so fn's results
  // must not depend on it.
  template <typename F>
  void ParallelFor(int64_t n, int max_threads, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    Job job;
    job.n = n;
    job.obj = const_cast<void*>(static_cast<const void*>(&fn));
    job.call = [](void* o, int64_t i) { (*static_cast<Fn*>(o))(i); };
    Run(job, max_threads);
  }

 private:
  struct Job {
    int64_t n = 0;
    void* obj = nullptr;
    void (*call)(void*, int64_t) = nullptr;
    std::atomic<int64_t> next{0};
    int open_slots = 0;  // Workers that may still join (guarded by mu_).
    int active = 0;      // Workers inside Work() (guarded by mu_).
  };

  void Run(Job& job, int max_threads);
  static void Work(Job& job);
  void WorkerLoop();

  std::mutex mu_;
  std::condition_variable work_cv_;  // Workers wait for jobs.
  std::condition_variable done_cv_;  // Callers wait for their job's workers.
  std::vector<Job*> queue_;          // Jobs with open slots (guarded by mu_).
  bool stop_ = false;                // Guarded by mu_.
  std::vector<std::thread> workers_;
};

}  // namespace parallax

#endif  // PARALLAX_CORE_THREAD_POOL_H_
