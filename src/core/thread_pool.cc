#include "core/thread_pool.h"

#include <algorithm>

namespace parallax {
namespace {
// True on a thread that is running a ParallelFor task (nested calls go inline).
thread_local bool t_in_task = false;
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  queue_.reserve(64);
  const int workers = std::max(0, num_threads - 1);
  workers_.reserve(static_cast<size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
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
  }
  for (int i = 0; i < helpers; ++i) work_cv_.notify_one();
  Work(job);
  // No worker may join after this; wait for those that did.
  std::unique_lock<std::mutex> lock(mu_);
  auto it = std::find(queue_.begin(), queue_.end(), &job);
  if (it != queue_.end()) queue_.erase(it);
  done_cv_.wait(lock, [&] { return job.active == 0; });
}

void ThreadPool::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    Job* job = queue_.front();
    if (--job->open_slots == 0) queue_.erase(queue_.begin());
    ++job->active;
    lock.unlock();
    Work(*job);
    lock.lock();
    if (--job->active == 0) done_cv_.notify_all();
  }
}

}  // namespace parallax
