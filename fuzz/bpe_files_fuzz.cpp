// GPT-2's vocab.json and merges.txt, split from the input at its first NUL byte.
#include "fuzz_util.h"
#include "retain/bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = retain::fuzz::bytes_of(data, size);
  const size_t nul = text.find('\0');
  const std::string vocab = retain::fuzz::scratch_file("vocab.json", text.substr(0, nul));
  const std::string merges =
      retain::fuzz::scratch_file("merges.txt", nul == std::string::npos ? "" : text.substr(nul + 1));
  retain::fuzz::refuse_or_accept([&] {
    const auto tokenizer = retain::Gpt2BpeTokenizer::from_files(vocab, merges);
    const std::vector<int64_t> ids = tokenizer->encode("Hello, world! 123 \xc3\xbc");
    for (const int64_t id : ids)
      if (id < 0 || id >= tokenizer->vocab_size()) std::abort();
    (void)tokenizer->decode(ids);
  });
  return 0;
}
