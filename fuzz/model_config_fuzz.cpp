// config.json of a model directory, as the gpt and llama families read it, and a PEFT
// adapter_config.json.
#include "fuzz_util.h"
#include "retain/config.h"
#include "retain/llama.h"
#include "retain/lora.h"
#include "retain/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = retain::fuzz::bytes_of(data, size);
  retain::fuzz::refuse_or_accept([&] {
    const nlohmann::json j = retain::parse_json<retain::ConfigError>(text, "config.json");
    retain::fuzz::refuse_or_accept([&] {
      const retain::GptConfig c = retain::GptConfig::from_json(j, "config.json");
      (void)c.num_parameters();
      (void)retain::GptConfig::from_json(c.to_json(), "again");  // what it writes it reads back
    });
    retain::fuzz::refuse_or_accept([&] {
      const retain::LlamaConfig c = retain::LlamaConfig::from_json(j, "config.json");
      (void)c.num_parameters();
      (void)c.context_length();
      (void)retain::llama_tensor_shapes(c);
    });
  });
  retain::fuzz::refuse_or_accept([&] {
    const std::string dir = retain::fuzz::scratch_dir() + "/adapter";
    std::filesystem::create_directories(dir);
    retain::write_file_atomic(dir + "/adapter_config.json", text);
    (void)retain::read_adapter_config(dir, retain::LoraLayout{{"q_proj", "v_proj"}, "", false});
  });
  return 0;
}
