#pragma once
// The ResNet family as data: block type, blocks per stage, variant and the
// grouping of the bottlenecks' 3×3 convolutions.
#include <array>
#include <string>
#include <vector>

namespace resnet {

enum class BlockKind { Basic, Bottleneck };

inline const char* block_name(BlockKind k) { return k == BlockKind::Basic ? "basic" : "bottleneck"; }

/// Where a stage downsamples and where the activations sit.
///   V1    (Keras ResNet50/101/152, the original paper): the first block of
///         stages 2–4 has stride 2 on its first 1×1 (and on the shortcut).
///   V1_5  (torchvision): the same blocks, stride 2 on the 3×3.
///   V2    (Keras ResNet50V2/101V2/152V2, pre-activation): each block starts
///         with BN + ReLU and ends at the addition (no ReLU, no BN after its
///         last conv); the stride sits on the 3×3 of the *last* block of
///         stages 1–3, whose shortcut subsamples the input; the stem has no
///         BN, and a BN + ReLU follows the last stage.
enum class Variant { V1, V1_5, V2 };

inline const char* variant_name(Variant v) { return v == Variant::V1 ? "v1" : v == Variant::V1_5 ? "v1.5" : "v2"; }

struct Architecture {
    std::string name;
    BlockKind block;
    std::array<int, 4> blocks_per_stage;
    Variant variant = Variant::V1_5;
    /// Bottlenecks only: layer s's 3×3 has groups × (width_per_group << s)
    /// channels in `groups` groups (ResNeXt); 1 × 64 is a plain ResNet.
    int groups = 1;
    int width_per_group = 64;

    /// Stride of block `i` of stage `s` (both from 0).
    int stride(int s, int i) const {
        if (variant == Variant::V2) return s < 3 && i + 1 == blocks_per_stage[size_t(s)] ? 2 : 1;
        return s > 0 && i == 0 ? 2 : 1;
    }
};

/// torchvision's table (torchvision/models/resnet.py) and keras.applications'
/// (keras_applications/resnet_common.py).
inline const std::vector<Architecture>& architectures() {
    static const std::vector<Architecture> table = {
        {"resnet18", BlockKind::Basic, {2, 2, 2, 2}},
        {"resnet34", BlockKind::Basic, {3, 4, 6, 3}},
        {"resnet50", BlockKind::Bottleneck, {3, 4, 6, 3}},
        {"resnet101", BlockKind::Bottleneck, {3, 4, 23, 3}},
        {"resnet152", BlockKind::Bottleneck, {3, 8, 36, 3}},
        {"resnext50_32x4d", BlockKind::Bottleneck, {3, 4, 6, 3}, Variant::V1_5, 32, 4},
        {"resnext101_32x8d", BlockKind::Bottleneck, {3, 4, 23, 3}, Variant::V1_5, 32, 8},
        {"resnext101_64x4d", BlockKind::Bottleneck, {3, 4, 23, 3}, Variant::V1_5, 64, 4},
        {"ResNet50", BlockKind::Bottleneck, {3, 4, 6, 3}, Variant::V1},
        {"ResNet101", BlockKind::Bottleneck, {3, 4, 23, 3}, Variant::V1},
        {"ResNet152", BlockKind::Bottleneck, {3, 8, 36, 3}, Variant::V1},
        {"ResNet50V2", BlockKind::Bottleneck, {3, 4, 6, 3}, Variant::V2},
        {"ResNet101V2", BlockKind::Bottleneck, {3, 4, 23, 3}, Variant::V2},
        {"ResNet152V2", BlockKind::Bottleneck, {3, 8, 36, 3}, Variant::V2},
    };
    return table;
}

/// Same block type, stage layout, variant and grouping (names aside).
inline bool same_layout(const Architecture& a, const Architecture& b) {
    return a.block == b.block && a.blocks_per_stage == b.blocks_per_stage && a.variant == b.variant &&
           a.groups == b.groups && a.width_per_group == b.width_per_group;
}

/// The table's name for this layout, or "" if none.
inline std::string architecture_name(const Architecture& layout) {
    for (const auto& a : architectures())
        if (same_layout(a, layout)) return a.name;
    return "";
}

}  // namespace resnet
