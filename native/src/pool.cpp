#include "pool.h"
#include <immintrin.h>

namespace tessera {

static const unsigned kFtzDaz = 0x8040;  // MXCSR: flush-to-zero (bit 15), denormals-are-zero (bit 6)
FlushDenormals::FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtzDaz); }
FlushDenormals::~FlushDenormals() { _mm_setcsr(saved_); }

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; i++) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  gen_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lk(m_);
    cv_.notify_all();
  }
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_tasks() {
  for (;;) {
    int64_t i = next_.fetch_add(1);
    if (i >= total_) break;
    (*job_)(i);
  }
}

void ThreadPool::worker_loop() {
  _mm_setcsr(_mm_getcsr() | kFtzDaz);
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = gen_.load();
    for (int spin = 0; g == seen && spin < 200000; spin++) {
      _mm_pause();
      g = gen_.load();
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lk(m_);
      sleepers_.fetch_add(1);
      cv_.wait(lk, [&] { return gen_.load() != seen; });
      sleepers_.fetch_sub(1);
      g = gen_.load();
    }
    seen = g;
    if (stop_.load()) return;
    run_tasks();
    if (epilogue_) epilogue_();
    done_.fetch_add(1);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; i++) fn(i);
    if (epilogue_) epilogue_();
    return;
  }
  job_ = &fn;
  total_ = n;
  next_.store(0);
  done_.store(0);
  gen_.fetch_add(1);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lk(m_);
    cv_.notify_all();
  }
  run_tasks();
  if (epilogue_) epilogue_();
  const int want = int(workers_.size());
  while (done_.load() < want) _mm_pause();
}

}  // namespace tessera
