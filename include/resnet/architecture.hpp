#pragma once
// The ResNet family as data: block type and blocks per stage.
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
};

/// torchvision's table (torchvision/models/resnet.py).
inline const std::vector<Architecture>& architectures() {
    static const std::vector<Architecture> table = {
        {"resnet18", BlockKind::Basic, {2, 2, 2, 2}},
        {"resnet34", BlockKind::Basic, {3, 4, 6, 3}},
        {"resnet50", BlockKind::Bottleneck, {3, 4, 6, 3}},
        {"resnet101", BlockKind::Bottleneck, {3, 4, 23, 3}},
        {"resnet152", BlockKind::Bottleneck, {3, 8, 36, 3}},
    };
    return table;
}

/// The table's name for this block type and stage layout, or "" if none.
inline std::string architecture_name(BlockKind block, const std::array<int, 4>& stages) {
    for (const auto& a : architectures())
        if (a.block == block && a.blocks_per_stage == stages) return a.name;
    return "";
}

}  // namespace resnet
