// The normalizers and pre-tokenizers of tokenizer.json (hf_internal.h). Unicode
// normalization is ICU's (Debian's libicu); regexes are PCRE2's, with \s rewritten to Unicode
// White_Space as the `tokenizers` library (Oniguruma) matches it.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>

#include <algorithm>
#include <cctype>

#include "hf_internal.h"
#include "retain/bpe.h"
#include "retain/errors.h"

namespace retain::hf {
namespace {

#define RETAIN_WHITE_SPACE                                 \
  "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}" \
  "\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

// `pattern` with \s and \S spelled as Unicode White_Space (PCRE2's own \s differs on U+180E).
std::string rewrite_white_space(const std::string& pattern, const std::string& where) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 's') out += in_class ? RETAIN_WHITE_SPACE : "[" RETAIN_WHITE_SPACE "]";
      else if (next == 'S' && !in_class) out += "[^" RETAIN_WHITE_SPACE "]";
      else if (next == 'S')
        throw CheckpointError(where + ": \\S inside a character class is not supported");
      else out += {c, next};
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // literal ]
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

std::string type_of(const nlohmann::json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>()
                                                                        : j.dump();
}

// ---- normalizers ----

class IcuNormalizer : public Normalizer {
 public:
  IcuNormalizer(const icu::Normalizer2* n) : n_(n) {}
  std::string normalize(std::string text) const override {
    bool ascii = true;
    for (const char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
    UErrorCode status = U_ZERO_ERROR;
    if (ascii || n_->isNormalizedUTF8(icu::StringPiece(text.data(), text.size()), status)) return text;
    std::string out;
    icu::StringByteSink<std::string> sink(&out);
    status = U_ZERO_ERROR;
    n_->normalizeUTF8(0, icu::StringPiece(text.data(), text.size()), sink, nullptr, status);
    if (U_FAILURE(status)) throw Error(std::string("Unicode normalization failed: ") + u_errorName(status));
    return out;
  }

 private:
  const icu::Normalizer2* n_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string s) : s_(std::move(s)) {}
  std::string normalize(std::string text) const override { return text.empty() ? text : s_ + text; }
  bool piecewise() const override { return false; }

 private:
  std::string s_;
};

class Replace : public Normalizer {
 public:
  Replace(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  std::string normalize(std::string text) const override { return replace_all(text, from_, to_); }
  bool piecewise() const override { return false; }

 private:
  std::string from_, to_;
};

class NormalizerSequence : public Normalizer {
 public:
  explicit NormalizerSequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string text) const override {
    for (const auto& s : steps_) text = s->normalize(std::move(text));
    return text;
  }
  bool piecewise() const override {
    for (const auto& s : steps_)
      if (!s->piecewise()) return false;
    return true;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// ---- pre-tokenizers ----

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior read_behavior(const nlohmann::json& j, const std::string& where) {
  const std::string b = j.is_string() ? j.get<std::string>() : j.dump();
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  throw CheckpointError(where + ": behavior " + b +
                        " is unknown (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)");
}

struct Span {
  size_t begin, end;
  bool match;
};

// tokenizers' NormalizedString::split: spans covering the text, combined as `behavior` says.
std::vector<Span> combine(const std::vector<Span>& spans, Behavior behavior) {
  std::vector<Span> acc;
  bool previous = false;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const Span& s : spans)
        if (!s.match) acc.push_back(s);
      return acc;
    case Behavior::kIsolated: return spans;
    case Behavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.match && !previous && !acc.empty()) acc.back().end = s.end;
        else acc.push_back(s);
        previous = s.match;
      }
      return acc;
    case Behavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !previous && !acc.empty()) acc.back().begin = it->begin;
        else acc.push_back(*it);
        previous = it->match;
      }
      return {acc.rbegin(), acc.rend()};
    case Behavior::kContiguous:
      for (const Span& s : spans) {
        if (s.match == previous && !acc.empty()) acc.back().end = s.end;
        else acc.push_back(s);
        previous = s.match;
      }
      return acc;
  }
  return acc;
}

// Splits each piece at the spans `find` returns (matches; the gaps are filled in here).
template <typename Find>
void split_pieces(std::vector<Piece>& pieces, Behavior behavior, bool invert, Find&& find) {
  std::vector<Piece> out;
  for (Piece& piece : pieces) {
    std::vector<Span> spans;
    size_t at = 0;
    for (const auto& [b, e] : find(piece.text)) {
      if (b > at) spans.push_back({at, b, invert});
      if (e > b) spans.push_back({b, e, !invert});
      at = e;
    }
    if (at < piece.text.size()) spans.push_back({at, piece.text.size(), invert});
    for (const Span& s : combine(spans, behavior))
      if (s.end > s.begin)
        out.push_back({piece.text.substr(s.begin, s.end - s.begin), piece.origin + s.begin, piece.byte_level});
  }
  pieces = std::move(out);
}

class SplitPre : public PreTokenizer {
 public:
  SplitPre(const nlohmann::json& j, const std::string& where) {
    const auto& pattern = j.at("pattern");
    const bool literal = pattern.contains("String");
    if (!literal && !pattern.contains("Regex"))
      throw CheckpointError(where + ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
    regex_ = std::make_unique<Regex>(pattern.at(literal ? "String" : "Regex").get<std::string>(), literal,
                                     where + ".pattern");
    behavior_ = read_behavior(j.at("behavior"), where + ".behavior");
    invert_ = j.value("invert", false);
  }
  void split(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, behavior_, invert_, [&](const std::string& t) { return regex_->find_all(t); });
  }

 private:
  std::unique_ptr<Regex> regex_;
  Behavior behavior_ = Behavior::kIsolated;
  bool invert_ = false;
};

class DigitsPre : public PreTokenizer {
 public:
  explicit DigitsPre(bool individual) : individual_(individual) {}
  void split(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, individual_ ? Behavior::kIsolated : Behavior::kContiguous, false,
                 [](const std::string& t) {
                   std::vector<std::pair<size_t, size_t>> m;
                   for (size_t i = 0; i < t.size(); ++i)
                     if (t[i] >= '0' && t[i] <= '9') m.emplace_back(i, i + 1);
                   return m;
                 });
  }

 private:
  bool individual_;
};

class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (Piece& piece : pieces) {
      std::string text = std::move(piece.text);
      if (add_prefix_space_ && (text.empty() || text[0] != ' ')) text.insert(text.begin(), ' ');
      std::vector<std::string_view> parts;
      if (use_regex_) parts = gpt2_pre_tokenize(text);
      else parts.push_back(text);
      for (const std::string_view part : parts) {
        Piece p{std::string(), piece.origin + static_cast<size_t>(part.data() - text.data()), true};
        for (const char c : part) p.text += gpt2_byte_to_unicode()[static_cast<unsigned char>(c)];
        out.push_back(std::move(p));
      }
    }
    pieces = std::move(out);
  }
  bool byte_level() const override { return true; }

 private:
  bool add_prefix_space_, use_regex_;
};

class PreSequence : public PreTokenizer {
 public:
  explicit PreSequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void split(std::vector<Piece>& pieces) const override {
    for (const auto& s : steps_) s->split(pieces);
  }
  bool byte_level() const override {
    for (const auto& s : steps_)
      if (s->byte_level()) return true;
    return false;
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

std::string replace_from(const nlohmann::json& j, const std::string& where) {
  const auto& p = j.at("pattern");
  if (!p.contains("String"))
    throw CheckpointError(where + ".pattern: only {\"String\": ...} patterns are supported in Replace");
  return p.at("String").get<std::string>();
}

}  // namespace

// ---- UTF-8 ----

size_t utf8_length(const unsigned char* s, size_t left) {
  const unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) n = 3;
  else if (c == 0xED) n = 3, hi = 0x9F;
  else if (c >= 0xEE && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;
  else return 0;
  if (left < n || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < n; ++i)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return n;
}

uint32_t utf8_decode(const unsigned char* s, size_t n) {
  if (n == 1) return s[0];
  uint32_t cp = s[0] & (0x7F >> n);
  for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (s[i] & 0x3F);
  return cp;
}

void utf8_append(uint32_t cp, std::string& s) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  std::string out;
  size_t at = 0;
  for (size_t hit; (hit = text.find(from, at)) != std::string::npos; at = hit + from.size())
    out.append(text, at, hit - at).append(to);
  return out.append(text, at, std::string::npos);
}

std::string replace_pattern(const nlohmann::json& j, const std::string& where) { return replace_from(j, where); }

bool is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// ---- Regex ----

Regex::Regex(const std::string& pattern, bool literal, const std::string& where) {
  const std::string source = literal ? pattern : rewrite_white_space(pattern, where);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                                literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (c == nullptr)
    throw CheckpointError(where + ": regex " + nlohmann::json(pattern).dump() + " does not compile at offset " +
                          std::to_string(offset) + ": " + pcre2_message(error));
  pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);
  code_ = c;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  auto* code = static_cast<const pcre2_code*>(code_);
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> match(
      pcre2_match_data_create_from_pattern(code, nullptr), pcre2_match_data_free);
  std::vector<std::pair<size_t, size_t>> out;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t at = 0;
  while (at < text.size()) {
    int rc = pcre2_match(code, subject, text.size(), at, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(code, subject, text.size(), at, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error("tokenizer regex: PCRE2 match failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.get());
    if (ov[1] == ov[0]) {  // an empty match: step over one character
      at = ov[0] + std::max<size_t>(1, utf8_length(subject + ov[0], text.size() - ov[0]));
      continue;
    }
    out.emplace_back(ov[0], ov[1]);
    at = ov[1];
  }
  return out;
}

// ---- factories ----

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j);
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* icu = nullptr;
  if (type == "NFC") icu = icu::Normalizer2::getNFCInstance(status);
  else if (type == "NFD") icu = icu::Normalizer2::getNFDInstance(status);
  else if (type == "NFKC") icu = icu::Normalizer2::getNFKCInstance(status);
  else if (type == "NFKD") icu = icu::Normalizer2::getNFKDInstance(status);
  if (icu != nullptr || U_FAILURE(status)) {
    if (U_FAILURE(status)) throw Error(where + ": ICU has no " + type + " data: " + u_errorName(status));
    return std::make_unique<IcuNormalizer>(icu);
  }
  if (type == "Prepend") return std::make_unique<Prepend>(j.at("prepend").get<std::string>());
  if (type == "Replace")
    return std::make_unique<Replace>(replace_from(j, where), j.at("content").get<std::string>());
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    const auto& list = j.at("normalizers");
    for (size_t i = 0; i < list.size(); ++i)
      if (auto s = make_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]"))
        steps.push_back(std::move(s));
    return std::make_unique<NormalizerSequence>(std::move(steps));
  }
  throw CheckpointError(where + ": type " + type +
                        " is not supported (retain reads NFC, NFD, NFKC, NFKD, Prepend, Replace, Sequence)");
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j);
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPre>(j.value("add_prefix_space", true), j.value("use_regex", true));
  if (type == "Split") return std::make_unique<SplitPre>(j, where);
  if (type == "Digits") return std::make_unique<DigitsPre>(j.value("individual_digits", false));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    const auto& list = j.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i)
      if (auto s = make_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]"))
        steps.push_back(std::move(s));
    return std::make_unique<PreSequence>(std::move(steps));
  }
  throw CheckpointError(where + ": type " + type +
                        " is not supported (retain reads ByteLevel, Split, Digits, Sequence)");
}

}  // namespace retain::hf
