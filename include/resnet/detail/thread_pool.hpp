#pragma once
// A minimal fork-join pool: `threads - 1` workers plus the calling thread run
// the items of one parallel_for at a time. Each forward() call owns its pool
// (see model.hpp), so `threads = 1` really means one core and concurrent
// callers never share workers.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace resnet::detail {

class ThreadPool {
public:
    explicit ThreadPool(int threads) {
        for (int i = 1; i < std::max(threads, 1); ++i) workers_.emplace_back([this] { work_loop(); });
    }
    ~ThreadPool() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& w : workers_) w.join();
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int threads() const { return int(workers_.size()) + 1; }

    /// Calls fn(i) for every i in [0, count), items taken dynamically by all
    /// threads. Which thread runs an item never changes its result, so output
    /// bits do not depend on the thread count.
    template <class F>
    void parallel_for(int64_t count, const F& fn) {
        if (count <= 0) return;
        if (workers_.empty() || count == 1) {
            for (int64_t i = 0; i < count; ++i) fn(i);
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            // A plain pointer + trampoline instead of std::function: no heap
            // allocation per call, so a warm forward() allocates nothing here.
            job_ = &fn;
            run_ = [](const void* f, int64_t i) { (*static_cast<const F*>(f))(i); };
            count_ = count;
            next_.store(0);
            busy_.store(int(workers_.size()));
            error_ = nullptr;
            generation_.fetch_add(1);
        }
        wake_.notify_all();
        run_items();
        spin_until([this] { return busy_.load() == 0; });
        std::unique_lock<std::mutex> lock(mu_);
        done_.wait(lock, [this] { return busy_.load() == 0; });
        job_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

private:
    /// Spins up to kSpin pause loops for `ready` before the caller blocks.
    /// A forward() issues ~100 parallel_for calls, most under a millisecond
    /// apart; blocking on the condition variables between them cost each a
    /// futex wake-up and, in a VM, a halted vCPU's resume. ResNet-50, 2
    /// threads, medians of 8 interleaved runs: 77.5 → 73 ms (best runs 62 →
    /// 58 ms). An idle pool stops spinning after ~100 µs.
    template <class Ready>
    static void spin_until(const Ready& ready) {
        constexpr int kSpin = 20000;  // ~50–100 µs
        for (int i = 0; i < kSpin && !ready(); ++i) pause();
    }
    static void pause() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }

    void run_items() {
        for (int64_t i; (i = next_.fetch_add(1)) < count_;) {
            try {
                run_(job_, i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mu_);
                if (!error_) error_ = std::current_exception();
            }
        }
    }

    void work_loop() {
        uint64_t seen = 0;
        for (;;) {
            spin_until([&] { return generation_.load() != seen; });
            {
                std::unique_lock<std::mutex> lock(mu_);
                wake_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
                if (stop_) return;
                seen = generation_.load();
            }
            run_items();
            std::lock_guard<std::mutex> lock(mu_);
            if (busy_.fetch_sub(1) == 1) done_.notify_one();
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable wake_, done_;
    const void* job_ = nullptr;
    void (*run_)(const void*, int64_t) = nullptr;
    int64_t count_ = 0;
    std::atomic<int64_t> next_{0};
    std::atomic<int> busy_{0};
    std::atomic<uint64_t> generation_{0};
    bool stop_ = false;
    std::exception_ptr error_;
};

}  // namespace resnet::detail
