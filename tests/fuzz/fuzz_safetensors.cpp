// libFuzzer target: arbitrary bytes as a weights file. Every outcome must be
// a model or a resnet::Error; ASan/UBSan turn anything else into a finding.
#include <resnet/resnet.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try {
        resnet::SafeTensorsFile file("fuzz.safetensors", bytes);
        for (const auto& kv : file.entries()) (void)file.read<float>(kv.first);
        (void)resnet::load_model(resnet::SafeTensorsFile("fuzz.safetensors", bytes));
    } catch (const resnet::Error&) {
    }
    return 0;
}
