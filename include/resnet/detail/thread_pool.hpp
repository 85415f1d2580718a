#pragma once
// A minimal fork-join pool: `threads - 1` workers plus the calling thread run
// the items of one parallel_for at a time. Each forward() call owns its pool
// (see model.hpp), so `threads = 1` really means one core and concurrent
// callers never share workers.
//
// Protocol. Items are numbered globally: step k covers [begin, end) right
// after step k - 1's. The step is cut into one contiguous share per thread
// taking part, held as a slot {next, end} (next: its first unclaimed item);
// every slot value only grows. A thread runs its own share first, then
// steals from the other slots in turn, and owns item n only by moving a
// slot's next from n to n + 1 with a compare-exchange while n < that slot's
// end. The caller writes each slot's next before its end, and a thread reads
// next before end, so a worker that wakes late, after its step ended, reads
// either a finished pair (next == end) or a new next past an old end, and
// claims nothing: it never runs an item of a finished step and never reads
// the caller's functor. The caller returns once done_ reaches end_, every
// item *finished*, not once every worker has checked in: a worker the OS
// descheduled costs at most the item it holds.
//
// Shares. Thread i's share is the i-th fraction of the step's items, so the
// same thread runs the same part of every step, and the kernels number
// their items so that neighbours in the numbering touch neighbouring data
// (parallel_ranges: consecutive channels; the direct convolution: a
// group's runs of positions in order). A thread then mostly reads what it
// wrote a step before, from its own core's cache, in one stream. With one
// global counter the threads took alternate items. 2 threads, in the
// network, medians of per-round ratios (instrumented builds, interleaved,
// Intel Xeon family 6 model 207): resnext50_32x4d 0.96× (its grouped 3×3s
// at 56² 1.14 → 0.83 ms; 8 rounds), resnet50 0.95× (10 rounds). Stealing
// keeps the balance of dynamic claiming when a thread falls behind.
// A share stays its thread's only if that thread starts on it: the caller
// publishes the slots last to first, so a spinning worker that sees any
// slot open finds its own published, and a thread that meets a slot of a
// newer step than the one it started on (its end past that step's end)
// starts over from its own share. Before, a worker often entered while
// only the caller's slot 0 was published, or was still stealing when the
// next step opened, took item 0, and the two threads alternated on slot 0
// for the rest of the step (1382–1650 of the 2000 two-item steps of the
// test "each thread starts on its own share"). A Winograd layer's input
// transform then wrote half of each chunk's V on the other core
// (ResNet-50's 64-channel 3×3 at 56², alone: 2 threads 1.17–1.37× the
// 1-thread speed, 1.44–1.56× with this). ResNet-50 at 2 threads, forward()
// calls alternating with the old order in one process (3 × 30 pairs, AMD
// EPYC family 26 model 2): medians of per-pair ratios 0.969–0.988.
//
// Narrowing. That item can still cost the OS's whole time slice: with one
// core of two busy elsewhere, ResNet-50 at 2 threads took 1.09–1.13× its
// quiet 1-thread time (bench/contention.py, three runs). So the caller times
// how long it waits for the others after its own last item; a wait above
// both kStall and its own share of the step is a stall. A stall within
// kRecent parallel steps of the previous one halves the threads that take
// items (workers of index >= width_ sleep) for the next `narrow_for_`
// steps, which doubles on each narrowing in a row (up to kMaxNarrow) and
// resets after kCalm stall-free steps at full width. One core busy, 2
// threads, 20–30 forwards per process, interleaved with the quiet 1-thread
// runs (Intel Xeon family 6 model 207): medians of per-round ratios 1.04
// and 1.07× the quiet 1-thread time, 1.12 and 1.11× before.
// A lone stall does not narrow: a busy core stalls step after step, but a
// first forward() touching its fresh scratch pages, or a VM's vCPU held
// back once by the host, stalls one step. Narrowing on the first stall, 5
// of 10 fresh processes of 1 + 5 forwards (ResNet-50, 2 threads, AMD EPYC
// family 26 model 2, Firecracker VM) stalled once and ran their next 256
// steps (3 forwards) on one thread; the 4 whose stall came before their
// last forward had medians of 34.9–42.3 ms, the 5 without one 27.7–31.8.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "cpu_budget.hpp"

namespace resnet::detail {

class ThreadPool {
public:
    /// Starts threads - 1 workers; if the system refuses a thread (e.g. a
    /// container's process limit), joins those started and throws an Error.
    /// `narrows`: whether stalls narrow the pool (see Narrowing). The
    /// loader's does not: its items, faulting in and writing fresh memory
    /// (populate.hpp), wait on the host for milliseconds, not on a busy core.
    /// With narrowing, ResNet-50's load ran most of them on one thread.
    explicit ThreadPool(int threads, bool narrows = true)
        : oversubscribed_(threads > 1 && threads > cpu_budget()), narrows_(narrows), width_(std::max(threads, 1)),
          slots_(size_t(std::max(threads, 1))) {
        try {
            for (int i = 1; i < std::max(threads, 1); ++i) workers_.emplace_back([this, i] { work_loop(i); });
        } catch (const std::system_error& e) {
            stop_workers();
            fail("ThreadPool: cannot start thread ", workers_.size() + 1, " of ", threads, ": ", e.what());
        }
    }
    ~ThreadPool() { stop_workers(); }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int threads() const { return int(workers_.size()) + 1; }

    /// How many threads take the items of the next step: threads() unless
    /// recent steps stalled (see Narrowing above). The calling thread's view.
    int width() const { return narrow_left_ > 0 ? width_.load() : threads(); }

    /// Calls fn(i) for every i in [0, count) on the width() threads, each
    /// starting on its contiguous share (see Shares above). Which thread
    /// runs an item never changes its result, so output bits do not depend
    /// on the thread count. If items throw, every item still runs and the
    /// first exception is rethrown here.
    template <class F>
    void parallel_for(int64_t count, const F& fn) {
        if (count <= 0) return;
        const int width = this->width();
        if (narrow_left_ > 0) --narrow_left_;
        if (width == 1 || count == 1) {
            std::exception_ptr first;
            for (int64_t i = 0; i < count; ++i) try {
                    fn(i);
                } catch (...) {
                    if (!first) first = std::current_exception();
                }
            if (first) std::rethrow_exception(first);
            return;
        }
        int64_t end = 0;
        {
            std::lock_guard<std::mutex> lock(mu_);
            // A plain pointer + trampoline instead of std::function: no heap
            // allocation per call, so a warm forward() allocates nothing here.
            job_ = &fn;
            run_ = [](const void* f, int64_t i) { (*static_cast<const F*>(f))(i); };
            begin_ = end_.load();
            error_ = nullptr;
            end = begin_ + count;
            width_.store(width);
            end_.store(end);
            for (int i = width - 1; i >= 0; --i) {
                slots_[size_t(i)].next.store(begin_ + i * count / width);
                slots_[size_t(i)].end.store(begin_ + (i + 1) * count / width);
            }
        }
        wake_.notify_all();
        const auto start = Clock::now();
        run_items(0);
        const auto own_done = Clock::now();
        if (!wait_briefly([&] { return done_.load() == end; }, oversubscribed_)) {
            std::unique_lock<std::mutex> lock(mu_);
            finished_.wait(lock, [&] { return done_.load() == end; });
        }
        const auto waited = Clock::now() - own_done;
        note_wait(width, waited > std::max<Clock::duration>(kStall, own_done - start));
        if (error_) std::rethrow_exception(error_);
    }

    /// Calls fn(begin, end) on contiguous ranges covering [0, count), at most
    /// 4 per thread, through parallel_for: for items too small to be claimed
    /// one by one, as each claim is a compare-exchange on a line every core
    /// writes. ResNet-50's 1×1 layers at 28², 14² and 7² had an im2col item
    /// per input channel (512–2048 items of 49–784 floats); in ranges, its
    /// four channel-reducing ones took 7.4 instead of 9.6 ms at 2 threads
    /// (Intel Xeon family 6 model 207, 6 interleaved rounds, medians).
    template <class F>
    void parallel_ranges(int64_t count, const F& fn) {
        const int64_t ranges = std::min<int64_t>(count, 4 * int64_t(threads()));
        parallel_for(ranges, [&](int64_t r) { fn(r * count / ranges, (r + 1) * count / ranges); });
    }

private:
    using Clock = std::chrono::steady_clock;
    /// A wait shorter than this is never a stall: ResNet-50's longest items
    /// took up to 1.5 ms at 2 threads on a quiet machine, while a thread the
    /// OS deschedules for another process's slice is gone for several.
    static constexpr auto kStall = std::chrono::milliseconds(2);
    /// In parallel steps: ResNet-50's forward() at 224² is 78 of them.
    static constexpr int kMinNarrow = 256, kMaxNarrow = 4096, kCalm = 256, kRecent = 64;

    /// Updates the narrowing state after a step run at `width`: see Narrowing.
    void note_wait(int width, bool stalled) {
        if (!narrows_) return;
        ++steps_;
        if (!stalled) {
            if (narrow_left_ == 0 && ++calm_ >= kCalm) narrow_for_ = kMinNarrow;
            return;
        }
        calm_ = 0;
        if (steps_ - std::exchange(last_stall_, steps_) > kRecent) return;  // a lone stall
        width_.store(std::max(1, width / 2));
        narrow_left_ = narrow_for_;
        narrow_for_ = std::min(2 * narrow_for_, kMaxNarrow);
    }

    void stop_workers() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& w : workers_) w.join();
    }

    /// Spins for `ready` up to kSpin, then gives up (the caller then blocks).
    /// A forward() issues ~100 parallel_for calls, most under a millisecond
    /// apart; blocking on the condition variables between them cost each a
    /// futex wake-up and, in a VM, a halted vCPU's resume (ResNet-50, 2
    /// threads, 8 interleaved runs: 77.5 → 73 ms with a spin). Bounded by
    /// time, not by a count of pauses: 20000 pauses, once ~70 µs, took
    /// 300–340 µs on the Xeon of README's Models table, and a waiter must not
    /// hold the core that the thread it waits for needs on a busy machine.
    /// 100 µs: bench/contention.py's figures in README (4 threads on 2 cores
    /// 1.03× the 2-thread time, before 1.5×). Against 3 ms (ResNet-50, 2
    /// threads, one fresh process of each per round, AMD EPYC family 25
    /// model 1, 2 vCPUs under KVM): per-round ratios 0.92 (10 rounds) and
    /// 1.006 (20; medians 57.4 and 54.0 ms). The workers slept up to 34
    /// times a forward() at 100 µs and never at 3 ms, at no measurable cost.
    /// With more threads than the process has CPUs (cpu_budget()), the thread
    /// that holds the awaited item may be waiting for this very core, so
    /// the spin yields it between checks. ResNet-50, 4 threads on 2 cores
    /// (bench/contention.py, 9 rounds, Intel Xeon family 6 model 207):
    /// 0.96× the 2-thread time, 1.08× before (with ranges and the store
    /// prefetch in both figures' new build).
    template <class Ready>
    static bool wait_briefly(const Ready& ready, bool yield) {
        constexpr auto kSpin = std::chrono::microseconds(100);
        const auto until = std::chrono::steady_clock::now() + kSpin;
        for (;;) {
            for (int i = 0; i < 16; ++i) {
                if (ready()) return true;
                pause();
            }
            if (yield) std::this_thread::yield();
            if (std::chrono::steady_clock::now() > until) return false;
        }
    }
    static void pause() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }

    /// Runs items of the open step until none is left: thread `me`'s share
    /// first, then the others'. Returns at a slot of a newer step.
    void run_items(int me) {
        const int width = width_.load();
        const int64_t step_end = end_.load();
        for (int i = 0; i < width; ++i) {
            Slot& slot = slots_[size_t((me + i) % width)];
            for (int64_t n = slot.next.load();;) {
                const int64_t end = slot.end.load();
                if (n >= end) break;
                if (end > step_end) return;
                if (!slot.next.compare_exchange_weak(n, n + 1)) continue;
                try {
                    run_(job_, n - begin_);
                } catch (...) {
                    std::lock_guard<std::mutex> lock(mu_);
                    if (!error_) error_ = std::current_exception();
                }
                if (done_.fetch_add(1) + 1 == end_.load()) {
                    std::lock_guard<std::mutex> lock(mu_);
                    finished_.notify_one();
                }
                n = slot.next.load();
            }
        }
    }

    /// Whether worker `index` has items to take in the open step.
    bool open_for(int index) const {
        const int width = width_.load();
        if (index >= width) return false;
        for (int i = 0; i < width; ++i)
            if (slots_[size_t(i)].next.load() < slots_[size_t(i)].end.load()) return true;
        return false;
    }

    void work_loop(int index) {
        const auto open = [this, index] { return open_for(index); };
        for (;;) {
            if (!wait_briefly(open, oversubscribed_)) {
                std::unique_lock<std::mutex> lock(mu_);
                wake_.wait(lock, [&] { return stop_ || open(); });
                if (stop_) return;
            }
            run_items(index);
        }
    }

    const bool oversubscribed_;  // more threads than cpu_budget(): spins yield
    const bool narrows_;
    std::atomic<int> width_;     // the open step's width(): workers of this index and above sit it out
    int narrow_left_ = 0, narrow_for_ = kMinNarrow, calm_ = 0;  // the caller's alone, as are:
    int64_t steps_ = 0, last_stall_ = -2 * int64_t(kRecent);      // parallel steps run, the last stalled one
    struct alignas(64) Slot {  // one thread's share of the open step; a cache line each
        std::atomic<int64_t> next{0}, end{0};
    };
    std::vector<Slot> slots_;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable wake_, finished_;
    const void* job_ = nullptr;
    void (*run_)(const void*, int64_t) = nullptr;
    int64_t begin_ = 0;                          // the open step's first item
    std::atomic<int64_t> end_{0}, done_{0};      // items published, finished: only grow
    bool stop_ = false;
    std::exception_ptr error_;
};

}  // namespace resnet::detail
