#pragma once
// Umbrella header: everything a user needs.
//   auto model = resnet::load_model("resnet50.safetensors");
//   resnet::Tensor<float> logits = model.forward(input);   // input N×3×H×W, normalized
// Image decoding is opt-in: #include <resnet/image.hpp> (needs stb_image and libjpeg;
// CMake: link resnet::image).
#include "architecture.hpp"
#include "blocks.hpp"
#include "bounded_queue.hpp"
#include "classify.hpp"
#include "error.hpp"
#include "inputs.hpp"
#include "layer_timing.hpp"
#include "layers/conv2d.hpp"
#include "layers/linear.hpp"
#include "layers/pool.hpp"
#include "loader.hpp"
#include "model.hpp"
#include "npy.hpp"
#include "pipeline.hpp"
#include "preprocess.hpp"
#include "random_weights.hpp"
#include "safetensors.hpp"
#include "tensor.hpp"
