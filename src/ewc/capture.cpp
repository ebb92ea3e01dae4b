// Activation capture for the batched per-example Fisher (see capture.h).
#include "retain/capture.h"

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
  if (capturing()) capture({LayerCapture::Kind::kLinear, layer.get(), x, y, 0, "", ""});
  return y;
}

torch::Tensor captured_layer_norm(torch::nn::LayerNorm& layer, const torch::Tensor& x) {
  auto y = layer(x);
  if (capturing()) capture({LayerCapture::Kind::kLayerNorm, layer.get(), x, y, 0, "", ""});
  return y;
}

}  // namespace retain
