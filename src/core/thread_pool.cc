#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace parallax {
namespace {
// True on a thread that is running a ParallelFor task (nested calls go inline).
thread_local bool t_in_task = false;
// This thread's worker index (0 = not a pool worker).
thread_local int t_worker = 0;

bool HigherFirst(const std::vector<double>& priority, int32_t a, int32_t b) {
  // std::push_heap keeps the max on top: a "less than" b when b should run first.
  return priority[static_cast<size_t>(a)] < priority[static_cast<size_t>(b)] ||
         (priority[static_cast<size_t>(a)] == priority[static_cast<size_t>(b)] && a > b);
}
void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
}  // namespace

int ThreadPool::CurrentWorker() { return t_worker; }

ThreadPool::TaskGraph::TaskGraph(const std::vector<std::vector<int32_t>>& succs,
                                 std::vector<double> priority)
    : priority_(std::move(priority)) {
  const size_t n = succs.size();
  priority_.resize(n, 0.0);
  num_preds_.assign(n, 0);
  succ_begin_.assign(n + 1, 0);
  for (size_t t = 0; t < n; ++t) {
    succ_begin_[t + 1] = succ_begin_[t] + static_cast<int32_t>(succs[t].size());
    for (int32_t s : succs[t]) ++num_preds_[static_cast<size_t>(s)];
  }
  succ_.reserve(static_cast<size_t>(succ_begin_[n]));
  for (const auto& list : succs) succ_.insert(succ_.end(), list.begin(), list.end());
  pending_.assign(n, 0);
  ready_.reserve(n);
}

ThreadPool::ThreadPool(int num_threads, int spin_us)
    : spin_ns_(static_cast<int64_t>(std::max(0, spin_us)) * 1000) {
  queue_.reserve(64);
  const int workers = std::max(0, num_threads - 1);
  workers_.reserve(static_cast<size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this, i] { WorkerLoop(i + 1); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    PublishLocked();
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Work(Job& job) {
  const bool outer = t_in_task;
  t_in_task = true;
  for (int64_t i = job.next.fetch_add(1, std::memory_order_relaxed); i < job.n;
       i = job.next.fetch_add(1, std::memory_order_relaxed))
    job.call(job.obj, i);
  t_in_task = outer;
}

void ThreadPool::Run(Job& job, int max_threads) {
  const int helpers =
      t_in_task
          ? 0
          : static_cast<int>(std::min<int64_t>({static_cast<int64_t>(max_threads) - 1,
                                                static_cast<int64_t>(workers_.size()), job.n - 1}));
  if (helpers <= 0) {
    Work(job);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job.open_slots = helpers;
    queue_.push_back(&job);
    PublishLocked();
  }
  for (int i = 0; i < helpers; ++i) work_cv_.notify_one();
  Work(job);
  // No worker may join after this; wait for those that did.
  std::unique_lock<std::mutex> lock(mu_);
  auto it = std::find(queue_.begin(), queue_.end(), &job);
  if (it != queue_.end()) queue_.erase(it);
  auto finished = [&] { return job.active.load(std::memory_order_acquire) == 0; };
  if (finished() || SpinUnlocked(lock, finished)) return;
  done_cv_.wait(lock, finished);
}

template <typename Done>
bool ThreadPool::SpinUnlocked(std::unique_lock<std::mutex>& lock, Done&& done) {
  if (spin_ns_ == 0) return false;
  lock.unlock();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(spin_ns_);
  bool ok = false;
  for (int i = 0;; ++i) {
    if (done()) {
      ok = true;
      break;
    }
    CpuRelax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= deadline) break;
  }
  lock.lock();
  return ok || done();  // Work published after the last poll is seen here.
}

ThreadPool::TaskGraph* ThreadPool::ReadyGraphLocked() {
  for (TaskGraph* g : graphs_)
    if (!g->ready_.empty() && g->running_ < g->max_running_) return g;
  return nullptr;
}

void ThreadPool::RunGraphTaskLocked(std::unique_lock<std::mutex>& lock, TaskGraph& g) {
  auto less = [&g](int32_t a, int32_t b) { return HigherFirst(g.priority_, a, b); };
  std::pop_heap(g.ready_.begin(), g.ready_.end(), less);
  const int32_t task = g.ready_.back();
  g.ready_.pop_back();
  ++g.running_;
  lock.unlock();
  g.call_(g.obj_, task);
  lock.lock();
  --g.running_;
  for (int32_t k = g.succ_begin_[static_cast<size_t>(task)];
       k < g.succ_begin_[static_cast<size_t>(task) + 1]; ++k) {
    const int32_t s = g.succ_[static_cast<size_t>(k)];
    if (--g.pending_[static_cast<size_t>(s)] == 0) {
      g.ready_.push_back(s);
      std::push_heap(g.ready_.begin(), g.ready_.end(), less);
    }
  }
  PublishLocked();  // Successors ready, or the run's end, for spinning threads.
  // The finishing thread takes the next ready task itself, so others are
  // woken only when more than one is ready, or the run ended.
  if (--g.remaining_ == 0 || g.ready_.size() > 1) work_cv_.notify_all();
}

void ThreadPool::JoinJobLocked(std::unique_lock<std::mutex>& lock) {
  Job* job = queue_.front();
  if (--job->open_slots == 0) queue_.erase(queue_.begin());
  job->active.fetch_add(1, std::memory_order_relaxed);
  lock.unlock();
  Work(*job);
  lock.lock();
  // The caller may return (and free the job) as soon as this reads 0.
  if (job->active.fetch_sub(1, std::memory_order_acq_rel) == 1) done_cv_.notify_all();
}

void ThreadPool::RunGraphImpl(TaskGraph& g, int max_threads) {
  std::unique_lock<std::mutex> lock(mu_);
  const size_t n = g.num_preds_.size();
  if (n == 0) return;
  g.remaining_ = static_cast<int32_t>(n);
  g.running_ = 0;
  g.max_running_ = std::max(1, max_threads);
  g.ready_.clear();
  auto less = [&g](int32_t a, int32_t b) { return HigherFirst(g.priority_, a, b); };
  for (size_t t = 0; t < n; ++t) {
    g.pending_[t] = g.num_preds_[t];
    if (g.pending_[t] == 0) g.ready_.push_back(static_cast<int32_t>(t));
  }
  std::make_heap(g.ready_.begin(), g.ready_.end(), less);
  graphs_.push_back(&g);
  PublishLocked();
  if (g.ready_.size() > 1) work_cv_.notify_all();
  // The caller runs its own graph's tasks and helps intra-op jobs, never
  // other graphs' tasks (so it returns as soon as its run is done).
  while (g.remaining_ > 0) {
    if (!g.ready_.empty() && g.running_ < g.max_running_) {
      RunGraphTaskLocked(lock, g);
    } else if (!queue_.empty()) {
      JoinJobLocked(lock);
    } else {
      const uint64_t seen = work_seq_.load(std::memory_order_relaxed);
      if (!SpinUnlocked(lock, [&] { return work_seq_.load(std::memory_order_acquire) != seen; }))
        work_cv_.wait(lock);
    }
  }
  graphs_.erase(std::find(graphs_.begin(), graphs_.end(), &g));
}

void ThreadPool::WorkerLoop(int index) {
  t_worker = index;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (!HasWorkLocked()) {
      const uint64_t seen = work_seq_.load(std::memory_order_relaxed);
      SpinUnlocked(lock, [&] { return work_seq_.load(std::memory_order_acquire) != seen; });
    }
    TaskGraph* g = nullptr;
    work_cv_.wait(lock,
                  [&] { return stop_ || (g = ReadyGraphLocked()) != nullptr || !queue_.empty(); });
    if (stop_) return;
    if (g != nullptr)
      RunGraphTaskLocked(lock, *g);
    else
      JoinJobLocked(lock);
  }
}

}  // namespace parallax
