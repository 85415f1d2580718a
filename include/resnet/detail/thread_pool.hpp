#pragma once
// A minimal fork-join pool: `threads - 1` workers plus the calling thread run
// the items of one parallel_for at a time. Each forward() call owns its pool
// (see model.hpp), so `threads = 1` really means one core and concurrent
// callers never share workers.
//
// Protocol. One atomic word holds the step's generation (high 32 bits) and
// its next unclaimed item (low 32 bits). A thread owns item i of step g only
// by moving the word from (g, i) to (g, i + 1) with a compare-exchange, and
// only while i < the step's count. So a worker that wakes late, after its
// step ended, sees another generation or an exhausted index and claims
// nothing: it never runs an item of a finished step and never reads the
// caller's functor. The caller returns once every item is *done* (`done_`
// reaches the count), not once every worker has checked in, so a worker the
// OS descheduled costs at most the item it holds, not the step.
#include <algorithm>
#include <atomic>
#include <chrono>
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
    /// bits do not depend on the thread count. If items throw, every item
    /// still runs and the first exception is rethrown here.
    template <class F>
    void parallel_for(int64_t count, const F& fn) {
        if (workers_.empty() || count == 1) {
            for (int64_t i = 0; i < count; ++i) fn(i);
            return;
        }
        for (int64_t base = 0; base < count; base += kMaxItems)
            step(std::min(kMaxItems, count - base), [&](int64_t i) { fn(base + i); });
    }

private:
    static constexpr int64_t kMaxItems = int64_t(1) << 31;  // an index up to the count fits the low 32 bits
    static constexpr uint64_t kIndexMask = (uint64_t(1) << 32) - 1;

    template <class F>
    void step(int64_t count, const F& fn) {
        uint64_t generation = 0;
        {
            std::lock_guard<std::mutex> lock(mu_);
            // A plain pointer + trampoline instead of std::function: no heap
            // allocation per call, so a warm forward() allocates nothing here.
            job_ = &fn;
            run_ = [](const void* f, int64_t i) { (*static_cast<const F*>(f))(i); };
            count_.store(count);
            done_.store(0);
            error_ = nullptr;
            generation = (state_.load() >> 32) + 1;
            state_.store(generation << 32);
        }
        wake_.notify_all();
        run_items(generation);
        if (!wait_briefly([&] { return done_.load() == count; })) {
            std::unique_lock<std::mutex> lock(mu_);
            finished_.wait(lock, [&] { return done_.load() == count; });
        }
        if (error_) std::rethrow_exception(error_);
    }

    /// Spins for `ready` up to kSpin, then gives up (the caller then blocks).
    /// A forward() issues ~100 parallel_for calls, most under a millisecond
    /// apart; blocking on the condition variables between them cost each a
    /// futex wake-up and, in a VM, a halted vCPU's resume. ResNet-50, 2
    /// threads, medians of 8 interleaved runs: 77.5 → 73 ms (best runs 62 →
    /// 58 ms). Bounded by time, not by a count of pauses: one pause took 15 ns
    /// on one Xeon and 3 ns elsewhere. A waiter on a busy machine must not
    /// keep the core that the thread it waits for needs.
    template <class Ready>
    static bool wait_briefly(const Ready& ready) {
        constexpr auto kSpin = std::chrono::microseconds(100);
        const auto until = std::chrono::steady_clock::now() + kSpin;
        for (;;) {
            for (int i = 0; i < 16; ++i) {
                if (ready()) return true;
                pause();
            }
            if (std::chrono::steady_clock::now() > until) return false;
        }
    }
    static void pause() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }

    /// Claims and runs items of step `generation` until none is left.
    void run_items(uint64_t generation) {
        for (uint64_t s = state_.load();;) {
            // count_ is read before the claim: a successful exchange proves
            // that step `generation` was still open, so count_ was its count.
            const int64_t count = count_.load();
            if (s >> 32 != generation || int64_t(s & kIndexMask) >= count) return;
            if (!state_.compare_exchange_weak(s, s + 1)) continue;
            try {
                run_(job_, int64_t(s & kIndexMask));
            } catch (...) {
                std::lock_guard<std::mutex> lock(mu_);
                if (!error_) error_ = std::current_exception();
            }
            if (done_.fetch_add(1) + 1 == count) {
                std::lock_guard<std::mutex> lock(mu_);
                finished_.notify_one();
            }
            s = state_.load();
        }
    }

    void work_loop() {
        uint64_t seen = 0;
        const auto fresh = [&] { return state_.load() >> 32 != seen; };
        for (;;) {
            if (!wait_briefly(fresh)) {
                std::unique_lock<std::mutex> lock(mu_);
                wake_.wait(lock, [&] { return stop_ || fresh(); });
                if (stop_) return;
            }
            seen = state_.load() >> 32;
            run_items(seen);
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable wake_, finished_;
    const void* job_ = nullptr;
    void (*run_)(const void*, int64_t) = nullptr;
    std::atomic<uint64_t> state_{0};  // generation << 32 | next item
    std::atomic<int64_t> count_{0}, done_{0};
    bool stop_ = false;
    std::exception_ptr error_;
};

}  // namespace resnet::detail
