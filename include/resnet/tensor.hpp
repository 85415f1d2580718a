#pragma once
// resnet::Tensor<T>: owning, contiguous, 64-byte aligned, row-major (NCHW for
// images) array with Eigen views.
#include <Eigen/Core>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "error.hpp"

namespace resnet {

using Shape = std::vector<int64_t>;

namespace detail {
constexpr size_t kAlign = 64;  // one cache line, a full AVX-512 register

/// Arrays of at least kMapBytes are mapped straight from the kernel and
/// unmapped when freed. glibc raises its mmap threshold after the first large
/// free, so the weight repacking at load (allocate the packed copy, free the
/// file's layout, layer after layer) otherwise leaves the freed layouts as
/// holes in the heap: ResNet-50's peak RSS measured 201 MiB that way, 177 MiB
/// with this. They are also marked for transparent huge pages (where the
/// kernel's THP mode is `madvise`): fewer TLB misses as the GEMM walks
/// weight panels and activation rows took ResNet-50 from 128–142 to
/// 110–134 ms (1 thread, medians of 4 interleaved runs) for +2 MiB of RSS.
/// They are populated at once (MADV_POPULATE_WRITE, Linux ≥ 5.14; older
/// kernels ignore it), not page by page as first written: each is written
/// whole (weights, activations; a scratch buffer by the layer it was sized
/// for), and under a VM each page fault is a trap to the hypervisor.
/// ResNet-50's load took 250–270 instead of 360–450 ms, with 2.5k instead
/// of 24k page faults (4 interleaved runs, AMD EPYC family 26 model 2,
/// Firecracker VM); peak RSS unchanged.
constexpr size_t kMapBytes = size_t(1) << 20;

/// Faults in the whole pages within [p, p + bytes) for writing, now
/// (MADV_POPULATE_WRITE; nothing where it is missing).
inline void populate_pages(void* p, size_t bytes) {
#if defined(MADV_POPULATE_WRITE)
    static const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t begin = (uintptr_t(p) + page - 1) / page * page,
                    end = (uintptr_t(p) + bytes) / page * page;
    if (begin < end) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
#else
    (void)p, (void)bytes;
#endif
}

/// Which pages the loader faults memory in as (detail/populate.hpp decides):
/// huge pages until kSlowHuge of them took longer than kSlowFault each, then
/// one trial huge page's worth of small pages, and small pages from then on
/// if the trial took less than half a slow huge page's time; else huge
/// pages for good. RESNET_HUGE_PAGES=always|never sets the choice instead
/// (choose_page_mode).
///
/// Why: in a VM that hands the guest's free memory back to its host (free
/// page reporting), a huge page comes from a large free block, which the
/// host may no longer back. In one such VM (AMD EPYC family 25 model 17,
/// Firecracker, reporting order 11) a 2 MiB huge page faulted in in 0.2 ms
/// where the host still backed it and in 4–7 ms where not, while 150 MiB
/// of small pages, taken from smaller free blocks, took 56–81 ms.
/// ResNet-50's load, fresh processes 4 s apart (alternating with the build
/// before): 339–475 → 137–194 ms at 1 thread (6 rounds), 250–303 →
/// 121–136 ms at 2 (4 rounds). What it costs such a process: weights in
/// small pages took forward() 1.028× the time at 1 thread and 1.016× at 2
/// (two models in one process, calls alternating, medians of 30 pairs'
/// ratios). In another (AMD EPYC family 26 model 2, Firecracker) small
/// pages faulted in slower than huge ones (140 MiB: 412–418 against
/// 207–257 ms), which the trial finds; where huge pages fault in fast
/// (bare metal, backed memory) nothing changes.
class PageChoice {
public:
    enum Mode { Huge, Trial, Small, HugeForGood };
    static constexpr int kSlowHuge = 2;
    static constexpr std::chrono::microseconds kSlowFault{2000};  // 10× a backed huge page's

    explicit PageChoice(Mode start = Huge) : mode_(start) {}

    Mode mode() const { return Mode(mode_.load(std::memory_order_relaxed)); }
    /// Counts a huge page's fault time; the kSlowHuge-th slow one starts the trial.
    void huge_took(std::chrono::nanoseconds t) {
        if (t <= kSlowFault) return;
        const int counted = slow_count_.fetch_add(1);
        if (counted >= kSlowHuge) return;
        slow_ns_ += t.count();
        if (counted + 1 == kSlowHuge) set(Huge, Trial);
    }
    /// The trial's time: small pages for good if under half a slow huge page's.
    void trial_took(std::chrono::nanoseconds t) {
        set(Trial, t.count() * 2 * kSlowHuge < slow_ns_.load() ? Small : HugeForGood);
    }
    /// For tests: back to `m` with nothing counted.
    void reset(Mode m = Huge) {
        slow_count_ = 0, slow_ns_ = 0;
        mode_ = m;
    }

private:
    void set(Mode from, Mode to) {
        int expected = from;
        mode_.compare_exchange_strong(expected, to);
    }
    std::atomic<int> mode_, slow_count_{0};
    std::atomic<int64_t> slow_ns_{0};
};

/// RESNET_HUGE_PAGES: "always" (huge pages, not measured), "never" (small
/// pages), or unset, empty or "auto" (measured, as above); anything else
/// is an Error.
inline PageChoice::Mode choose_page_mode() {
    const char* env = std::getenv("RESNET_HUGE_PAGES");
    const std::string setting = env ? env : "";
    if (setting.empty() || setting == "auto") return PageChoice::Huge;
    if (setting == "always") return PageChoice::HugeForGood;
    if (setting == "never") return PageChoice::Small;
    fail("RESNET_HUGE_PAGES=", setting, ": unknown setting (expected auto, always or never)");
}

/// The process's choice, started from RESNET_HUGE_PAGES at the first call.
inline PageChoice& page_choice() {
    static PageChoice choice(choose_page_mode());
    return choice;
}

/// Marks [p, p + bytes) for transparent huge pages (where the kernel has them),
/// unless small pages have been chosen (PageChoice).
inline void advise_huge_pages(void* p, size_t bytes) {
#if defined(MADV_HUGEPAGE)
    if (page_choice().mode() != PageChoice::Small) ::madvise(p, bytes, MADV_HUGEPAGE);
#else
    (void)p, (void)bytes;
#endif
}

/// Takes back advise_huge_pages() for [p, p + bytes) (whole huge pages, not yet faulted in).
inline void forgo_huge_pages(void* p, size_t bytes) {
#if defined(MADV_NOHUGEPAGE)
    ::madvise(p, bytes, MADV_NOHUGEPAGE);
#else
    (void)p, (void)bytes;
#endif
}

struct AlignedFree {
    size_t mapped = 0;  // bytes from mmap, or 0: from aligned_alloc
    /// Set for an array carved from a larger block (detail::WeightArena):
    /// the block, released with its last array, and the array not freed alone.
    std::shared_ptr<const void> block;
    void operator()(void* p) const noexcept {
        if (block) return;
#if defined(__unix__) || defined(__APPLE__)
        if (mapped) {
            ::munmap(p, mapped);
            return;
        }
#endif
        std::free(p);
    }
};

/// n elements; mapped and populated at once (above) from kMapBytes, unless
/// `populate` is false: then the caller faults the pages in (see
/// detail/populate.hpp).
template <class T>
std::unique_ptr<T[], AlignedFree> aligned_array(size_t n, bool populate = true) {
    if (n == 0) return nullptr;
    if (n > (SIZE_MAX - kAlign) / sizeof(T)) throw std::bad_alloc();
    const size_t bytes = (n * sizeof(T) + kAlign - 1) / kAlign * kAlign;
#if defined(__unix__) || defined(__APPLE__)
    if (bytes >= kMapBytes) {
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        advise_huge_pages(p, bytes);
        if (populate) populate_pages(p, bytes);
        return std::unique_ptr<T[], AlignedFree>(static_cast<T*>(p), AlignedFree{bytes, nullptr});
    }
#endif
    void* p = std::aligned_alloc(kAlign, bytes);
    if (!p) throw std::bad_alloc();
    return std::unique_ptr<T[], AlignedFree>(static_cast<T*>(p));
}

inline int64_t checked_numel(const Shape& shape) {
    int64_t n = 1;
    for (int64_t d : shape) {
        if (d < 0) fail("tensor shape ", shape_str(shape), " has a negative dimension");
        if (d != 0 && n > INT64_MAX / d) fail("tensor shape ", shape_str(shape), " overflows int64");
        n *= d;
    }
    return n;
}
}  // namespace detail

template <class T>
class Tensor {
    static_assert(std::is_floating_point<T>::value, "Tensor<T> holds float or double");

public:
    using Scalar = T;
    using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

    Tensor() = default;
    /// Zero-filled tensor of the given shape.
    explicit Tensor(Shape shape) {
        resize(std::move(shape));
        std::fill_n(data_.get(), size_, T(0));
    }
    /// Tensor whose elements are left uninitialized, for callers that
    /// overwrite every element (file reads, layer outputs).
    static Tensor uninitialized(Shape shape) {
        Tensor t;
        t.resize(std::move(shape));
        return t;
    }
    /// As uninitialized(), its pages not faulted in yet: for
    /// detail::populated(), which faults them in on several threads.
    static Tensor unpopulated(Shape shape) {
        Tensor t;
        t.resize(std::move(shape), false);
        return t;
    }
    /// A tensor over storage allocated elsewhere (detail::WeightArena),
    /// which must hold the shape's elements; its deleter frees it.
    static Tensor adopt(Shape shape, std::unique_ptr<T[], detail::AlignedFree> storage) {
        Tensor t;
        t.size_ = t.capacity_ = detail::checked_numel(shape);
        t.shape_ = std::move(shape);
        t.data_ = std::move(storage);
        return t;
    }
    Tensor(Shape shape, const T* values) : Tensor(uninitialized(std::move(shape))) {
        std::copy_n(values, size_, data_.get());
    }
    Tensor(const Tensor& o)
        : shape_(o.shape_), size_(o.size_), capacity_(o.size_), data_(detail::aligned_array<T>(size_t(o.size_))) {
        std::copy_n(o.data(), size_, data_.get());
    }
    Tensor& operator=(const Tensor& o) {
        if (this != &o) *this = Tensor(o);
        return *this;
    }
    Tensor(Tensor&&) noexcept = default;
    Tensor& operator=(Tensor&&) noexcept = default;

    const Shape& shape() const { return shape_; }
    int rank() const { return int(shape_.size()); }
    int64_t dim(int i) const {
        if (i < 0) i += rank();
        if (i < 0 || i >= rank())
            detail::fail("tensor of shape ", shape_str(shape_), " has no dimension ", i);
        return shape_[size_t(i)];
    }
    int64_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    T* data() { return data_.get(); }
    const T* data() const { return data_.get(); }
    T* begin() { return data(); }
    T* end() { return data() + size_; }
    const T* begin() const { return data(); }
    const T* end() const { return data() + size_; }

    T& operator[](int64_t i) { return data_[size_t(i)]; }
    const T& operator[](int64_t i) const { return data_[size_t(i)]; }

    /// Element (n,c,h,w) of a rank-4 tensor; bounds are checked.
    T& at(int64_t n, int64_t c, int64_t h, int64_t w) { return data_[size_t(offset(n, c, h, w))]; }
    const T& at(int64_t n, int64_t c, int64_t h, int64_t w) const {
        return data_[size_t(offset(n, c, h, w))];
    }

    /// Same data, new shape; throws naming both shapes when the sizes differ.
    Tensor reshaped(Shape shape) const& {
        Tensor t(*this);
        return std::move(t).reshaped(std::move(shape));
    }
    Tensor reshaped(Shape shape) && {
        if (detail::checked_numel(shape) != size_)
            detail::fail("cannot reshape tensor of shape ", shape_str(shape_), " to ", shape_str(shape));
        shape_ = std::move(shape);
        return std::move(*this);
    }

    /// Gives the tensor `shape`, its elements left uninitialized. The storage
    /// is kept when it holds enough elements, so a buffer resized for one
    /// tensor after another is allocated only as it grows.
    void resize(Shape shape) { resize(std::move(shape), true); }

    /// Throws "<what>: expected shape [..], got [..]" unless shape() == expected.
    /// A -1 in `expected` matches any size.
    void require_shape(const Shape& expected, const std::string& what) const {
        bool ok = expected.size() == shape_.size();
        for (size_t i = 0; ok && i < expected.size(); ++i) ok = expected[i] < 0 || expected[i] == shape_[i];
        if (!ok)
            detail::fail(what, ": expected shape ", shape_str(expected), ", got ", shape_str(shape_));
    }

    /// Row-major matrix view: dim(0) rows, everything else flattened into columns.
    Eigen::Map<RowMatrix, Eigen::Aligned64> matrix() { return {data(), rows(), cols()}; }
    Eigen::Map<const RowMatrix, Eigen::Aligned64> matrix() const { return {data(), rows(), cols()}; }
    /// Flat view of all elements.
    Eigen::Map<Vector, Eigen::Aligned64> vector() { return {data(), size_}; }
    Eigen::Map<const Vector, Eigen::Aligned64> vector() const { return {data(), size_}; }

    template <class U>
    Tensor<U> cast() const {
        Tensor<U> out(shape_);
        std::transform(begin(), end(), out.begin(), [](T v) { return U(v); });
        return out;
    }

private:
    /// resize(); new storage's pages faulted in at once if `populate`.
    void resize(Shape shape, bool populate) {
        size_ = detail::checked_numel(shape);
        shape_ = std::move(shape);
        if (data_ && size_ <= capacity_) return;  // (a moved-from tensor holds none)
        data_.reset();
        data_ = detail::aligned_array<T>(size_t(size_), populate);
        capacity_ = size_;
    }

    int64_t rows() const { return rank() == 0 ? 1 : shape_[0]; }
    int64_t cols() const { return rows() == 0 ? 0 : size_ / rows(); }
    int64_t offset(int64_t n, int64_t c, int64_t h, int64_t w) const {
        if (rank() != 4)
            detail::fail("at(n,c,h,w) needs a rank-4 tensor, got shape ", shape_str(shape_));
        const int64_t idx[4] = {n, c, h, w};
        for (int i = 0; i < 4; ++i)
            if (idx[i] < 0 || idx[i] >= shape_[size_t(i)])
                detail::fail("index (", n, ",", c, ",", h, ",", w, ") out of range for shape ",
                             shape_str(shape_));
        return ((n * shape_[1] + c) * shape_[2] + h) * shape_[3] + w;
    }

    Shape shape_;
    int64_t size_ = 0, capacity_ = 0;  // elements in shape_, elements data_ holds
    std::unique_ptr<T[], detail::AlignedFree> data_;
};

}  // namespace resnet
