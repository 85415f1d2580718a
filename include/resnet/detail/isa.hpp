#pragma once
// Run-time choice of the instruction set the float kernels run on.
//
// On x86-64 with GCC or Clang the hot kernels (GEMM micro-kernel, Winograd
// transforms: detail/kernels.hpp) are compiled once per instruction set with
// function-level target attributes, so a program built with the compiler's
// default flags still runs AVX2 or AVX-512 code. The set is chosen once, at
// the first use, from the CPU (__builtin_cpu_supports), unless the
// environment variable RESNET_ISA names one (portable|sse2|avx2|avx512).
// Elsewhere (MSVC, ARM, or RESNET_NO_DISPATCH defined: in every translation
// unit of a program or in none, as the kernel tables would differ) only the portable
// Eigen kernels exist, vectorized by whatever the global flags allow; double
// always runs them.
#include <cstdlib>
#include <string>

#include "../error.hpp"

#if !defined(RESNET_NO_DISPATCH) && (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define RESNET_X86_DISPATCH 1
#else
#define RESNET_X86_DISPATCH 0
#endif

namespace resnet::detail {

enum class Isa { Portable, Sse2, Avx2, Avx512 };

inline const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Sse2: return "sse2";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
        default: return "portable";
    }
}

/// Whether this build has `isa`'s kernels and this CPU can run them.
inline bool isa_supported(Isa isa) {
#if RESNET_X86_DISPATCH
    __builtin_cpu_init();
    switch (isa) {
        case Isa::Sse2: return __builtin_cpu_supports("sse2");
        case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case Isa::Avx512: return __builtin_cpu_supports("avx512f");
        default: return true;
    }
#else
    return isa == Isa::Portable;
#endif
}

inline Isa best_isa() {
    for (Isa isa : {Isa::Avx512, Isa::Avx2, Isa::Sse2})
        if (isa_supported(isa)) return isa;
    return Isa::Portable;
}

/// RESNET_ISA's set if given (an Error if unknown or unsupported), else the best.
inline Isa choose_isa() {
    const char* env = std::getenv("RESNET_ISA");
    if (!env || !*env) return best_isa();
    for (Isa isa : {Isa::Portable, Isa::Sse2, Isa::Avx2, Isa::Avx512})
        if (std::string(env) == isa_name(isa)) {
            if (!isa_supported(isa))
                fail("RESNET_ISA=", env, ": not supported by this CPU or build (best here: ", isa_name(best_isa()), ")");
            return isa;
        }
    fail("RESNET_ISA=", env, ": unknown instruction set (expected portable, sse2, avx2 or avx512)");
}

/// The float kernels' set, chosen at the first call.
inline Isa active_isa() {
    static const Isa isa = choose_isa();
    return isa;
}

}  // namespace resnet::detail
