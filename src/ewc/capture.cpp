// Activation capture for the batched per-example Fisher (see capture.h).
#include "retain/capture.h"

#include "retain/lora.h"

namespace retain {
namespace {

thread_local std::vector<LayerCapture>* g_capture = nullptr;

}  // namespace

CaptureScope::CaptureScope() : previous_(g_capture) { g_capture = &records_; }
CaptureScope::~CaptureScope() { g_capture = previous_; }

bool capturing() { return g_capture != nullptr; }

void capture(LayerCapture record) {
  if (g_capture == nullptr || !record.output.requires_grad()) return;
  record.input = record.input.detach();
  g_capture->push_back(std::move(record));
}

torch::Tensor captured_linear(torch::nn::Linear& layer, const torch::Tensor& x) {
  auto y = layer(x);
  // A frozen layer (under a LoRA adapter) has no Fisher of its own: nothing to record.
  if (capturing() && layer->weight.requires_grad()) capture({LayerCapture::Kind::kLinear, layer.get(), x, y, 0, "", ""});
  if (const auto adapted = lora_branch(*layer, x); adapted.defined()) y = y + adapted;
  return y;
}

torch::Tensor captured_layer_norm(torch::nn::LayerNorm& layer, const torch::Tensor& x) {
  auto y = layer(x);
  if (capturing()) capture({LayerCapture::Kind::kLayerNorm, layer.get(), x, y, 0, "", ""});
  return y;
}

}  // namespace retain
