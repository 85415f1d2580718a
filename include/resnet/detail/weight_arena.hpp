#pragma once
// detail::WeightArena: the memory and threads a model's weight layouts are
// made with at load.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>

#include "../tensor.hpp"
#include "populate.hpp"
#include "thread_pool.hpp"

namespace resnet::detail {

/// Where the layers lay their weights out at load (Conv2d's constructor and
/// the layout functions it calls): arrays carved one after another from
/// 2 MiB-aligned reservations of address space in transparent huge pages
/// (small pages where those fault in slowly: PageChoice, tensor.hpp),
/// faulted in on the loader's pool as the carving reaches them; without a
/// pool, on the calling thread.
///
/// Why one block: in this VM (AMD EPYC family 26 model 2, Firecracker, free
/// page reporting) weights in 4 KiB pages, written at load, were read slowly
/// by the first forward(): ~2.4 ms per MiB (layer2's 2.4 MB Winograd U
/// 6.3 ms instead of 0.75, layer3's 1 MiB 1×1s 3.0 instead of 0.65), those
/// in whole huge pages at full speed. Arrays of their own are in 4 KiB
/// pages below 1 MiB (the heap) and at both ends of a mapping that is not
/// 2 MiB-aligned. ResNet-50's load + first forward(), fresh processes
/// (medians of 6 interleaved rounds): 1 thread 325 + 83.5 ms with arrays
/// of their own, 326 + 42.7 carved (and the workspace reserved at load,
/// loader.hpp); 2 threads 202 + 31.8 and 201 + 24.3. The forwards after:
/// 37–42 ms at 1 thread either way.
///
/// Each carved tensor keeps its block mapped (AlignedFree::block), so a
/// layer copied or moved out of the model may outlive it. A block is closed
/// when the next array does not fit in it, and by close() at the end of the
/// load: its address space past the last array is unmapped, with the unused
/// part of the last huge page, so the model holds what its arrays need
/// rounded to 4 KiB, not to 2 MiB.
class WeightArena {
public:
    /// Address space per block (none of it is memory until carved): a
    /// torchvision ResNet-50's layouts take 118.6 MiB.
    static constexpr size_t kBlockBytes = size_t(256) << 20;

    /// Blocks of `block_bytes` (rounded up to 2 MiB), or larger for a larger array.
    explicit WeightArena(ThreadPool* pool, size_t block_bytes = kBlockBytes)
        : pool_(pool), block_bytes_(whole_huge_pages(block_bytes)) {}
    ~WeightArena() { close(); }
    WeightArena(const WeightArena&) = delete;
    WeightArena& operator=(const WeightArena&) = delete;

    /// The loader's pool, or null: lay out on the calling thread.
    ThreadPool* pool() const { return pool_; }

    /// An uninitialized tensor of `shape`, its pages faulted in; on its own
    /// (populated()) where no block can be reserved.
    template <class T>
    Tensor<T> tensor(Shape shape) {
        const size_t bytes = size_t(checked_numel(shape)) * sizeof(T);
        char* p = bytes ? carve((bytes + kAlign - 1) / kAlign * kAlign) : nullptr;
        if (!p) return populated<T>(std::move(shape), pool_);
        return Tensor<T>::adopt(std::move(shape),
                                std::unique_ptr<T[], AlignedFree>(reinterpret_cast<T*>(p), AlignedFree{0, block_}));
    }

    /// Closes the current block (above); the next tensor() opens another.
    void close() {
#if defined(MAP_NORESERVE)
        if (!block_) return;
        const size_t page = size_t(::sysconf(_SC_PAGESIZE)), keep = (used_ + page - 1) / page * page;
        if (keep < block_->bytes) ::munmap(block_->base + keep, block_->bytes - keep);
        block_->bytes = keep;
#endif
        block_.reset();
        used_ = faulted_ = 0;
    }

private:
    struct Block {
        char* base = nullptr;
        size_t bytes = 0;  // mapped from base
        ~Block() {
#if defined(MAP_NORESERVE)
            if (bytes) ::munmap(base, bytes);
#endif
        }
    };

    /// `bytes` (a multiple of kAlign) from the current block or a new one,
    /// faulted in; null where no block can be reserved.
    char* carve(size_t bytes) {
        if (!block_ || used_ + bytes > block_->bytes) {
            close();
            if (!reserve(std::max(block_bytes_, whole_huge_pages(bytes)))) return nullptr;
        }
        char* p = block_->base + used_;
        used_ += bytes;
        if (used_ <= faulted_) return p;
        // At least a huge page per thread at a time: faulting in only the
        // pages this array needs (one or two, for most) ran on one thread.
        // ResNet-50's load at 2 threads, fresh processes (medians of 6
        // interleaved rounds, AMD EPYC family 26 model 2): 228 → 201 ms.
        const size_t ahead = faulted_ + size_t(pool_ ? pool_->threads() : 1) * kHugePage;
        const size_t need = std::min(std::max(whole_huge_pages(used_), ahead), block_->bytes);
        populate_on(pool_, block_->base + faulted_, need - faulted_);
        faulted_ = need;
        return p;
    }

    /// Maps `bytes` (a multiple of kHugePage) of address space at a kHugePage
    /// boundary, marked for huge pages.
    bool reserve(size_t bytes) {
#if defined(MAP_NORESERVE)
        const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
        void* m = ::mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (m == MAP_FAILED) return false;
        char* const raw = static_cast<char*>(m);
        char* const base = reinterpret_cast<char*>(whole_huge_pages(uintptr_t(raw)));
        if (base > raw) ::munmap(raw, size_t(base - raw));
        ::munmap(base + bytes, size_t(raw + kHugePage - base));
        advise_huge_pages(base, bytes);
        block_ = std::make_shared<Block>();
        block_->base = base;
        block_->bytes = bytes;
        return true;
#else
        (void)bytes;
        return false;
#endif
    }

    ThreadPool* pool_;
    size_t block_bytes_;
    std::shared_ptr<Block> block_;
    size_t used_ = 0, faulted_ = 0;  // bytes of the block carved, faulted in
};

/// A layer's weight layout of `shape`: carved from `arena`, or without one
/// an array of its own (the calling thread faults it in as it writes).
template <class T>
Tensor<T> layout_tensor(WeightArena* arena, Shape shape) {
    return arena ? arena->tensor<T>(std::move(shape)) : Tensor<T>::uninitialized(std::move(shape));
}

/// The pool a layout is written on: the arena's, or none.
inline ThreadPool* layout_pool(const WeightArena* arena) { return arena ? arena->pool() : nullptr; }

}  // namespace resnet::detail
