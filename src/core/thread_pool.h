// ThreadPool: the runtime's own worker threads, owned by a session and shared
// by everything that runs in parallel inside it: the branch scheduler's
// dataflow runs (RunGraph) and intra-op tiles (ParallelFor). No other library
// threads run kernels: oneDNN is pinned to one OpenMP thread per calling
// thread (dnnl_util.h).
//
//   ThreadPool pool(4);                       // the caller + 3 workers
//   pool.ParallelFor(n, 4, [&](int64_t i) { ... });
//   ThreadPool::TaskGraph g(succs, priority); // built once
//   pool.RunGraph(g, 4, [&](int32_t task) { ... });
//
// Hybrid parallelism: an idle worker first takes the highest-priority ready
// graph task, else joins an open ParallelFor job. A ParallelFor called from a
// graph task recruits idle workers; one called from inside a ParallelFor
// index runs inline. There are never more busy threads than the pool's
// threads plus the callers. A worker that runs out of work spins for at most
// `spin_us` microseconds, watching for new work without taking the lock, and
// then sleeps on a condition variable; a ParallelFor caller likewise spins
// that long for its helpers to finish before it sleeps. Back-to-back small
// ops (decoder steps) then do not pay a futex wake-up each, and a pool with
// nothing to do sleeps. ParallelFor and RunGraph do not allocate. Thread safety: both
// may be called from several threads at once (independent jobs); nesting
// never deadlocks.
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
  static constexpr int kDefaultSpinUs = 50;  // SessionOptions::spin_us default.
  // `num_threads` counts the calling thread: num_threads - 1 workers start.
  // `spin_us` (>= 0; 0 = sleep at once): how long an idle thread polls for
  // work before it sleeps.
  explicit ThreadPool(int num_threads, int spin_us = kDefaultSpinUs);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // 0 on threads the pool does not own, 1..num_threads()-1 on its workers.
  static int CurrentWorker();

  // A fixed task DAG run many times by RunGraph: task t becomes ready once
  // every task listing t in its successors has finished. Holds the state of
  // one run, so a TaskGraph is run by one RunGraph call at a time.
  class TaskGraph {
   public:
    // succs[t]: tasks that depend on t (each < size, acyclic). priority[t]:
    // among ready tasks, higher runs first.
    TaskGraph(const std::vector<std::vector<int32_t>>& succs, std::vector<double> priority);
    int32_t size() const { return static_cast<int32_t>(num_preds_.size()); }

   private:
    friend class ThreadPool;
    std::vector<int32_t> succ_begin_;  // CSR offsets, size() + 1 entries.
    std::vector<int32_t> succ_;
    std::vector<int32_t> num_preds_;
    std::vector<double> priority_;
    // Per-run state, guarded by the pool's mutex.
    std::vector<int32_t> pending_;  // Unfinished predecessors per task.
    std::vector<int32_t> ready_;    // Heap ordered by priority_.
    int32_t remaining_ = 0;
    int max_running_ = 1;
    int running_ = 0;
    void* obj_ = nullptr;
    void (*call_)(void*, int32_t) = nullptr;
  };

  // Runs every task of `graph` once, in dependency order, on the calling
  // thread and idle workers, at most `max_threads` tasks at a time; returns
  // when all have finished. fn(task) must not throw.
  template <typename F>
  void RunGraph(TaskGraph& graph, int max_threads, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    graph.obj_ = const_cast<void*>(static_cast<const void*>(&fn));
    graph.call_ = [](void* o, int32_t t) { (*static_cast<Fn*>(o))(t); };
    RunGraphImpl(graph, max_threads);
  }

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
    int open_slots = 0;          // Workers that may still join (guarded by mu_).
    std::atomic<int> active{0};  // Workers inside Work() (changed under mu_).
  };

  void Run(Job& job, int max_threads);
  static void Work(Job& job);
  void WorkerLoop(int index);
  void RunGraphImpl(TaskGraph& graph, int max_threads);
  // Helpers called with mu_ held (the lock is released while work runs).
  TaskGraph* ReadyGraphLocked();
  void RunGraphTaskLocked(std::unique_lock<std::mutex>& lock, TaskGraph& graph);
  void JoinJobLocked(std::unique_lock<std::mutex>& lock);
  // Whether a worker has something to do (mu_ held).
  bool HasWorkLocked() { return stop_ || ReadyGraphLocked() != nullptr || !queue_.empty(); }
  // Releases `lock` and polls for up to spin_ns_ until `done()` (an atomic
  // read) holds; re-locks and returns whether it holds. With publishers
  // changing that state under mu_, false means it is false under the lock.
  template <typename Done>
  bool SpinUnlocked(std::unique_lock<std::mutex>& lock, Done&& done);
  // Marks that work was published (mu_ held), for spinning workers.
  void PublishLocked() { work_seq_.fetch_add(1, std::memory_order_release); }

  std::mutex mu_;
  std::condition_variable work_cv_;    // Workers wait for jobs.
  std::condition_variable done_cv_;    // Callers wait for their job's workers.
  std::vector<Job*> queue_;            // Jobs with open slots (guarded by mu_).
  std::vector<TaskGraph*> graphs_;     // Graph runs in progress (guarded by mu_).
  bool stop_ = false;                  // Guarded by mu_.
  std::atomic<uint64_t> work_seq_{0};  // Bumped (under mu_) whenever work appears.
  const int64_t spin_ns_;
  std::vector<std::thread> workers_;
};

}  // namespace parallax

#endif  // PARALLAX_CORE_THREAD_POOL_H_
