// A Hugging Face tokenizer.json: read, then encode and decode a fixed text and the input itself.
#include "fuzz_util.h"
#include "retain/hf_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = retain::fuzz::bytes_of(data, size);
  retain::fuzz::refuse_or_accept([&] {
    const auto tokenizer = retain::HfTokenizer::from_json_text(text, "tokenizer.json");
    for (const std::string& s : {std::string("Hello, world! 123 \xc3\xbc \xf0\x9f\x98\x80 <|im_end|>"), text.substr(0, 256)}) {
      const std::vector<int64_t> ids = tokenizer->encode_with_specials(s);
      for (const int64_t id : ids)
        if (id < 0 || id >= tokenizer->vocab_size()) std::abort();
      (void)tokenizer->decode(ids);
    }
  });
  return 0;
}
