// Encoding and decoding with a tokenizer.json (hf_tokenizer.h), in the `tokenizers` library's
// order: added tokens out of the raw text, then per section normalizer → added tokens marked
// normalized → pre-tokenizer → BPE. Loading is in hf_load.cpp, the components in hf_pipeline.cpp
// and hf_bpe.cpp.
#include "retain/hf_tokenizer.h"

#include <algorithm>
#include <cctype>

#include "hf_internal.h"
#include "retain/bpe.h"
#include "retain/errors.h"

namespace retain {
namespace {

bool is_word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

// Code point ending at `end` (its first byte at the returned offset), for lstrip.
size_t previous_char(const std::string& s, size_t end) {
  size_t b = end - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  return b;
}

uint32_t code_point_at(const std::string& s, size_t at, size_t* length) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + at;
  const size_t n = hf::utf8_length(p, s.size() - at);
  *length = std::max<size_t>(n, 1);
  return n == 0 ? 0xFFFD : hf::utf8_decode(p, n);
}

}  // namespace

HfTokenizer::~HfTokenizer() = default;

std::vector<HfTokenizer::Match> HfTokenizer::find_added(const std::string& text, bool specials,
                                                        bool normalized) const {
  std::vector<Match> out;
  size_t at = 0, floor = 0;  // floor: end of the previous match (lstrip stops there)
  while (at < text.size()) {
    const std::vector<size_t>& candidates = added_by_first_byte_[static_cast<unsigned char>(text[at])];
    const AddedToken* found = nullptr;
    size_t index = 0;
    for (const size_t i : candidates) {
      const AddedToken& a = added_[i];
      if (a.normalized == normalized && text.compare(at, a.content.size(), a.content) == 0) {
        found = &a, index = i;
        break;
      }
    }
    if (found == nullptr) {
      ++at;
      continue;
    }
    size_t begin = at, end = at + found->content.size();
    at = end;
    // Matched but not taken (as tokenizers does): a special token under encode_special_tokens,
    // a single_word token inside a word.
    if (found->special && !specials) continue;
    if (found->single_word && ((begin > 0 && is_word_byte(text[begin - 1])) ||
                               (end < text.size() && is_word_byte(text[end]))))
      continue;
    if (found->lstrip) {
      while (begin > floor) {
        const size_t b = previous_char(text, begin);
        size_t n = 0;
        if (!hf::is_white_space(code_point_at(text, b, &n))) break;
        begin = b;
      }
    }
    if (found->rstrip) {
      size_t n = 0;
      while (end < text.size() && hf::is_white_space(code_point_at(text, end, &n))) end += n;
      at = end;
    }
    out.push_back({begin, end, index});
    floor = end;
  }
  return out;
}

void HfTokenizer::encode_normalized(const std::string& text, std::vector<int64_t>& ids,
                                    std::vector<size_t>* starts) const {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  // Valid UTF-8 goes through the pre-tokenizer; each run of invalid bytes is a piece of its own.
  std::vector<hf::Piece> pieces;
  const bool byte_level = pre_tokenizer_ != nullptr && pre_tokenizer_->byte_level();
  for (size_t at = 0; at < text.size();) {
    size_t valid_end = at;
    while (valid_end < text.size() && hf::utf8_length(bytes + valid_end, text.size() - valid_end) > 0)
      valid_end += hf::utf8_length(bytes + valid_end, text.size() - valid_end);
    if (valid_end > at) {
      std::vector<hf::Piece> part = {{text.substr(at, valid_end - at), at, false}};
      if (pre_tokenizer_) pre_tokenizer_->split(part);
      for (auto& p : part) pieces.push_back(std::move(p));
    }
    size_t invalid_end = valid_end;
    while (invalid_end < text.size() && hf::utf8_length(bytes + invalid_end, text.size() - invalid_end) == 0)
      ++invalid_end;
    if (invalid_end > valid_end) {
      hf::Piece p{std::string(), valid_end, byte_level};
      for (size_t i = valid_end; i < invalid_end; ++i)
        p.text += byte_level ? gpt2_byte_to_unicode()[bytes[i]] : std::string(1, text[i]);
      pieces.push_back(std::move(p));
    }
    at = invalid_end;
  }
  for (const hf::Piece& piece : pieces) {
    const size_t first = ids.size();
    model_->encode(piece.text, ids);
    if (starts == nullptr) continue;
    // Where each token starts: a byte-level token spells one source byte per character.
    size_t offset = piece.origin;
    for (size_t k = first; k < ids.size(); ++k) {
      starts->push_back(offset);
      const std::string* t = model_->token(ids[k]);
      size_t n = t != nullptr ? t->size() : 1;
      if (piece.byte_level && t != nullptr) {
        n = 0;
        for (const char c : *t) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
      } else if (t != nullptr && t->size() == 6 && t->compare(0, 3, "<0x") == 0) {
        n = 1;
      }
      offset += n;
    }
  }
}

void HfTokenizer::encode_section(const std::string& text, std::vector<int64_t>& out) const {
  if (text.empty()) return;
  const std::string normalized = normalizer_ ? normalizer_->normalize(text) : text;
  size_t at = 0;
  for (const Match& m : find_added(normalized, true, true)) {
    encode_normalized(normalized.substr(at, m.begin - at), out, nullptr);
    out.push_back(added_[m.token].id);
    at = m.end;
  }
  encode_normalized(normalized.substr(at), out, nullptr);
}

void HfTokenizer::encode_into(const std::string& text, bool specials, std::vector<int64_t>& out) const {
  size_t at = 0;
  for (const Match& m : find_added(text, specials, false)) {
    encode_section(text.substr(at, m.begin - at), out);
    out.push_back(added_[m.token].id);
    at = m.end;
  }
  encode_section(text.substr(at), out);
}

std::vector<int64_t> HfTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> out;
  encode_into(text, false, out);
  return out;
}

std::vector<int64_t> HfTokenizer::encode_with_specials(const std::string& text) const {
  std::vector<int64_t> out;
  encode_into(text, true, out);
  return out;
}

std::optional<int64_t> HfTokenizer::token_id(const std::string& token) const {
  for (const AddedToken& a : added_)
    if (a.content == token) return a.id;
  return model_->id(token);
}

std::string HfTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  std::vector<std::string> group;  // model tokens since the last added token
  auto flush = [&] {
    if (decoder_) decoder_->decode(group);
    for (const auto& t : group) text += t;
    group.clear();
  };
  for (const int64_t id : ids) {
    if (id >= 0 && id < vocab_size_ && added_index_of_id_[id] >= 0) {
      flush();
      text += added_[added_index_of_id_[id]].content;
      continue;
    }
    const std::string* token = model_->token(id);
    if (token == nullptr)
      throw Error("token id " + std::to_string(id) + " is not in the tokenizer's vocabulary (" +
                  std::to_string(vocab_size_) + " ids)");
    group.push_back(*token);
  }
  flush();
  return text;
}

RenderedChat HfTokenizer::encode_pieces(const std::vector<ChatPiece>& pieces) const {
  RenderedChat out;
  std::string run;              // normalized text since the last token
  std::vector<uint8_t> trained;  // per byte of run
  auto flush = [&] {
    if (run.empty()) return;
    std::vector<int64_t> ids;
    std::vector<size_t> starts;
    size_t at = 0;
    for (const Match& m : find_added(run, true, true)) {
      const std::string part = run.substr(at, m.begin - at);
      std::vector<size_t> part_starts;
      encode_normalized(part, ids, &part_starts);
      for (const size_t s : part_starts) starts.push_back(at + s);
      ids.push_back(added_[m.token].id);
      starts.push_back(m.begin);
      at = m.end;
    }
    std::vector<size_t> part_starts;
    encode_normalized(run.substr(at), ids, &part_starts);
    for (const size_t s : part_starts) starts.push_back(at + s);
    for (size_t k = 0; k < ids.size(); ++k) {
      out.ids.push_back(ids[k]);
      out.mask.push_back(trained[std::min(starts[k], trained.size() - 1)]);
    }
    run.clear();
    trained.clear();
  };
  auto push_token = [&](int64_t id, bool t) {
    flush();
    out.ids.push_back(id);
    out.mask.push_back(t ? 1 : 0);
  };
  for (const ChatPiece& piece : pieces) {
    if (piece.kind == ChatPiece::Kind::kToken) {
      push_token(piece_token(piece.text), piece.trained);
      continue;
    }
    size_t at = 0;
    auto append = [&](const std::string& text) {
      if (text.empty()) return;
      if (normalizer_ && !normalizer_->piecewise())
        throw CheckpointError("this tokenizer's normalizer (Prepend or Replace) cannot render chat templates; "
                              "retain renders with NFC-style normalizers or none");
      const std::string normalized = normalizer_ ? normalizer_->normalize(text) : text;
      run += normalized;
      trained.insert(trained.end(), normalized.size(), piece.trained ? 1 : 0);
    };
    for (const Match& m : find_added(piece.text, piece.kind == ChatPiece::Kind::kText, false)) {
      append(piece.text.substr(at, m.begin - at));
      push_token(added_[m.token].id, piece.trained);
      at = m.end;
    }
    append(piece.text.substr(at));
  }
  flush();
  return out;
}

nlohmann::json HfTokenizer::to_json() const {
  nlohmann::json j = {{"type", type()},
                      {"format_version", 1},
                      {"tokenizer_json", nlohmann::json::parse(json_text_)},
                      {"eos_token_ids", eos_ids()}};
  if (has_chat_template()) {
    j["chat_template"] = chat_template_name();
    j["chat_template_options"] = {{"bos_token", chat_template().options().bos_token},
                                  {"default_system", chat_template().options().default_system}};
  }
  return j;
}

}  // namespace retain
