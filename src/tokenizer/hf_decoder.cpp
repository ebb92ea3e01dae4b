// The decoders of tokenizer.json (hf_internal.h): token strings back to bytes.
#include <algorithm>
#include <cctype>

#include "hf_internal.h"
#include "retain/bpe.h"
#include "retain/errors.h"

namespace retain::hf {
namespace {

std::string type_of(const nlohmann::json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>()
                                                                        : j.dump();
}

// ---- decoders ----

class ByteLevelDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    static const std::unordered_map<std::string, char> kByteOf = [] {
      std::unordered_map<std::string, char> m;
      for (int b = 0; b < 256; ++b) m[gpt2_byte_to_unicode()[b]] = static_cast<char>(b);
      return m;
    }();
    for (std::string& token : tokens) {
      std::string bytes;
      bool mapped = true;
      for (size_t at = 0; at < token.size() && mapped;) {
        const size_t n = std::max<size_t>(1, utf8_length(reinterpret_cast<const unsigned char*>(token.data()) + at,
                                                         token.size() - at));
        const auto it = kByteOf.find(token.substr(at, n));
        mapped = it != kByteOf.end();
        if (mapped) bytes.push_back(it->second);
        at += n;
      }
      if (mapped) token = std::move(bytes);  // as tokenizers: a token with other characters stays as it is
    }
  }
};

// <0xXX> tokens become their byte (the raw byte even where the bytes are not valid UTF-8, so
// that decode inverts encode; tokenizers writes U+FFFD there).
class ByteFallbackDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(t[3]) && std::isxdigit(t[4]))
        t = std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
    }
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens = {all};
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = replace_all(t, from_, to_);
  }

 private:
  std::string from_, to_;
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      for (size_t i = 0; i < start_ && t.compare(0, content_.size(), content_) == 0; ++i) t.erase(0, content_.size());
      for (size_t i = 0; i < stop_ && t.size() >= content_.size() &&
                         t.compare(t.size() - content_.size(), content_.size(), content_) == 0; ++i)
        t.erase(t.size() - content_.size());
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class BpeSuffixDecoder : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = replace_all(tokens[i], suffix_, i + 1 == tokens.size() ? "" : " ");
  }

 private:
  std::string suffix_;
};

class DecoderSequence : public Decoder {
 public:
  explicit DecoderSequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (const auto& s : steps_) s->decode(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(replace_pattern(j, where), j.at("content").get<std::string>());
  if (type == "Strip")
    return std::make_unique<StripDecoder>(j.at("content").get<std::string>(), j.value("start", 0),
                                          j.value("stop", 0));
  if (type == "BPEDecoder") return std::make_unique<BpeSuffixDecoder>(j.value("suffix", "</w>"));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    const auto& list = j.at("decoders");
    for (size_t i = 0; i < list.size(); ++i)
      if (auto s = make_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]")) steps.push_back(std::move(s));
    return std::make_unique<DecoderSequence>(std::move(steps));
  }
  throw CheckpointError(where + ": type " + type +
                        " is not supported (retain reads ByteLevel, ByteFallback, Fuse, Replace, Strip, "
                        "BPEDecoder, Sequence)");
}

}  // namespace retain::hf
