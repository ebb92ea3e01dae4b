// safetensors bytes (model.safetensors, adapter_model.safetensors, ewc.safetensors, checkpoints).
// A file that decodes must encode back to tensors that decode to the same names and shapes.
#include "fuzz_util.h"
#include "retain/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  retain::fuzz::refuse_or_accept([&] {
    const retain::SafetensorsFile file = retain::decode_safetensors(retain::fuzz::bytes_of(data, size), "fuzz");
    const retain::SafetensorsFile again = retain::decode_safetensors(retain::encode_safetensors(file.tensors), "again");
    if (again.tensors.size() != file.tensors.size()) std::abort();
    for (const auto& [name, tensor] : file.tensors)
      if (again.tensors.at(name).sizes() != tensor.sizes()) std::abort();
  });
  return 0;
}
