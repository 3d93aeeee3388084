// A persistent thread pool: the calling thread plus n-1 workers share each parallel_for.
// Workers spin briefly between jobs (decode issues hundreds of small jobs per token), then sleep.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tessera {

// Subnormal floats flushed to zero (inputs and results) while kernels run. Tiny values arise
// in attention (softmax weights of far-off keys) and activations; on x86 each subnormal operand
// costs a microcode assist, which made long decodes slow down several-fold. Their contribution
// is far below any tolerance. Workers keep the mode; the calling (JS) thread gets it back.
class FlushDenormals {
 public:
  FlushDenormals();
  ~FlushDenormals();

 private:
  unsigned saved_;
};

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  int size() const { return int(workers_.size()) + 1; }
  // run fn(i) for i in [0, n), spread over all threads; returns when every task is done
  void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);
  // run by each thread after its share of every job (KernelTable::clear_upper), or nothing
  void set_epilogue(void (*fn)()) { epilogue_ = fn; }

 private:
  void worker_loop();
  void run_tasks();
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> done_{0};
  std::atomic<bool> stop_{false};
  int64_t total_ = 0;
  const std::function<void(int64_t)>* job_ = nullptr;
  void (*epilogue_)() = nullptr;
  std::mutex m_;
  std::condition_variable cv_;
};

}  // namespace tessera
