#pragma once
// The ResNet family as data: block type, blocks per stage and the grouping
// of the bottlenecks' 3×3 convolutions.
#include <array>
#include <string>
#include <vector>

namespace resnet {

enum class BlockKind { Basic, Bottleneck };

inline const char* block_name(BlockKind k) { return k == BlockKind::Basic ? "basic" : "bottleneck"; }

struct Architecture {
    std::string name;
    BlockKind block;
    std::array<int, 4> blocks_per_stage;
    /// Bottlenecks only: layer s's 3×3 has groups × (width_per_group << s)
    /// channels in `groups` groups (ResNeXt); 1 × 64 is a plain ResNet.
    int groups = 1;
    int width_per_group = 64;
};

/// torchvision's table (torchvision/models/resnet.py).
inline const std::vector<Architecture>& architectures() {
    static const std::vector<Architecture> table = {
        {"resnet18", BlockKind::Basic, {2, 2, 2, 2}},
        {"resnet34", BlockKind::Basic, {3, 4, 6, 3}},
        {"resnet50", BlockKind::Bottleneck, {3, 4, 6, 3}},
        {"resnet101", BlockKind::Bottleneck, {3, 4, 23, 3}},
        {"resnet152", BlockKind::Bottleneck, {3, 8, 36, 3}},
        {"resnext50_32x4d", BlockKind::Bottleneck, {3, 4, 6, 3}, 32, 4},
        {"resnext101_32x8d", BlockKind::Bottleneck, {3, 4, 23, 3}, 32, 8},
        {"resnext101_64x4d", BlockKind::Bottleneck, {3, 4, 23, 3}, 64, 4},
    };
    return table;
}

/// Same block type, stage layout and grouping (names aside).
inline bool same_layout(const Architecture& a, const Architecture& b) {
    return a.block == b.block && a.blocks_per_stage == b.blocks_per_stage && a.groups == b.groups &&
           a.width_per_group == b.width_per_group;
}

/// The table's name for this layout, or "" if none.
inline std::string architecture_name(const Architecture& layout) {
    for (const auto& a : architectures())
        if (same_layout(a, layout)) return a.name;
    return "";
}

}  // namespace resnet
