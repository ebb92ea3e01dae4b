// SentencePiece through libsentencepiece (sentencepiece_tokenizer.h).
#include "retain/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>

#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {

struct SentencePieceTokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

SentencePieceTokenizer::SentencePieceTokenizer() : impl_(std::make_unique<Impl>()) {}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_bytes(const std::string& bytes,
                                                                           const std::string& where) {
  std::unique_ptr<SentencePieceTokenizer> tok(new SentencePieceTokenizer());
  const auto status = tok->impl_->sp.LoadFromSerializedProto(bytes);
  if (!status.ok())
    throw CheckpointError(where + ": not a SentencePiece model: " + status.ToString());
  return tok;
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_file(const std::string& path) {
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    throw CheckpointError(std::string("cannot read SentencePiece model: ") + e.what());
  }
  return from_bytes(bytes, path);
}

int64_t SentencePieceTokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = impl_->sp.Encode(text, &ids);
  if (!status.ok()) throw Error("SentencePiece encode failed: " + status.ToString());
  return {ids.begin(), ids.end()};
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  std::vector<int> run;  // ordinary ids since the last control token
  auto flush = [&] {
    std::string part;
    const auto status = impl_->sp.Decode(run, &part);
    if (!status.ok()) throw Error("SentencePiece decode failed: " + status.ToString());
    text += part;
    run.clear();
  };
  for (const int64_t id : ids) {
    if (id < 0 || id >= vocab_size())
      throw Error("token id " + std::to_string(id) + " is not in the SentencePiece vocabulary (" +
                  std::to_string(vocab_size()) + " ids)");
    if (impl_->sp.IsControl(static_cast<int>(id))) {
      flush();
      text += impl_->sp.IdToPiece(static_cast<int>(id));
    } else {
      run.push_back(static_cast<int>(id));
    }
  }
  flush();
  return text;
}

std::optional<int64_t> SentencePieceTokenizer::token_id(const std::string& piece) const {
  const int id = impl_->sp.PieceToId(piece);
  if (impl_->sp.IsUnknown(id) && impl_->sp.IdToPiece(id) != piece) return std::nullopt;
  return id;
}

nlohmann::json SentencePieceTokenizer::to_json() const {
  nlohmann::json j = {{"type", type()},
                      {"format_version", 1},
                      {"model_base64", base64_encode(impl_->sp.serialized_model_proto())},
                      {"eos_token_ids", eos_ids()}};
  if (has_chat_template()) j["chat_template"] = chat_template_name();
  return j;
}

namespace {
constexpr const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}  // namespace

std::string base64_encode(const std::string& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k) v = (v << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0);
    for (size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[(v >> (18 - 6 * k)) & 0x3F] : '=';
  }
  return out;
}

std::string base64_decode(const std::string& text) {
  if (text.size() % 4 != 0) throw Error("base64: length is not a multiple of 4");
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t v = 0;
    size_t pad = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      const char* at = c == '=' ? nullptr : std::strchr(kAlphabet, c);
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        ++pad;
      } else if (at == nullptr || c == '\0' || pad > 0) {
        throw Error("base64: unexpected character at offset " + std::to_string(i + k));
      }
      v = (v << 6) | (at != nullptr ? static_cast<uint32_t>(at - kAlphabet) : 0);
    }
    for (size_t k = 0; k < 3 - pad; ++k) out += static_cast<char>((v >> (16 - 8 * k)) & 0xFF);
  }
  return out;
}

}  // namespace retain
