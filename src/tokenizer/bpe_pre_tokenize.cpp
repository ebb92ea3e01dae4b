// GPT-2's byte alphabet and pre-tokenizer (see bpe.h): the regex runs under PCRE2 with Unicode
// properties, JIT-compiled when the library supports it.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "retain/bpe.h"
#include "retain/errors.h"

namespace retain {
namespace {

// \s of the original regex, spelled out: Unicode White_Space, which is what GPT-2's Python
// `regex`, Hugging Face tokenizers and tiktoken match. PCRE2's own \s would add U+180E, and
// JavaScript's (gpt-3-encoder) adds U+FEFF and drops U+0085.
#define RETAIN_GPT2_WS                                     \
  "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}" \
  "\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
constexpr const char* kPattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" RETAIN_GPT2_WS "\\p{L}\\p{N}]+"
    "|[" RETAIN_GPT2_WS "]+(?![^" RETAIN_GPT2_WS "])|[" RETAIN_GPT2_WS "]+";
#undef RETAIN_GPT2_WS

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

// The compiled pattern, shared by every thread (matching does not modify it).
const pcre2_code* pattern() {
  static const std::unique_ptr<pcre2_code, CodeDeleter> code = [] {
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (c == nullptr) {
      throw Error("GPT-2 pre-tokenizer regex does not compile at offset " +
                  std::to_string(offset) + ": " + pcre2_message(error));
    }
    pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);  // optional: without JIT, pcre2_match interprets
    return std::unique_ptr<pcre2_code, CodeDeleter>(c);
  }();
  return code.get();
}

// Length of the valid UTF-8 sequence (RFC 3629: no overlongs, surrogates or > U+10FFFF) at `s`,
// or 0 when the byte at `s` does not start one.
size_t utf8_sequence_length(const unsigned char* s, size_t left) {
  const unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
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

// Splits valid UTF-8 `text` with the regex, appending the pieces to `out`.
void split_valid(std::string_view text, pcre2_match_data* match, std::vector<std::string_view>& out) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t at = 0;
  while (at < text.size()) {
    // The text was validated above, so PCRE2 need not check it again on every call.
    int rc = pcre2_match(pattern(), subject, text.size(), at, PCRE2_NO_UTF_CHECK, match, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(pattern(), subject, text.size(), at, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, match,
                       nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error("GPT-2 pre-tokenizer: PCRE2 match failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
    // The alternatives cover every character, so a gap cannot happen; keep its bytes if it does.
    if (ovector[0] > at) out.push_back(text.substr(at, ovector[0] - at));
    out.push_back(text.substr(ovector[0], ovector[1] - ovector[0]));
    at = ovector[1];
  }
  if (at < text.size()) out.push_back(text.substr(at));
}

}  // namespace

const std::array<std::string, 256>& gpt2_byte_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    auto utf8 = [](uint32_t cp) {
      std::string s;
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {  // all code points here are below U+0800
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
      return s;
    };
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      t[b] = utf8(printable ? b : next++);
    }
    return t;
  }();
  return table;
}

std::vector<std::string_view> gpt2_pre_tokenize(std::string_view text) {
  std::vector<std::string_view> out;
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> match(
      pcre2_match_data_create_from_pattern(pattern(), nullptr));
  if (!match) throw Error("GPT-2 pre-tokenizer: out of memory");
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  size_t valid_begin = 0, at = 0;
  while (at < text.size()) {
    const size_t n = utf8_sequence_length(bytes + at, text.size() - at);
    if (n > 0) {
      at += n;
      continue;
    }
    // A run of invalid bytes: the valid text before it, then the run as one piece.
    split_valid(text.substr(valid_begin, at - valid_begin), match.get(), out);
    const size_t run_begin = at;
    while (at < text.size() && utf8_sequence_length(bytes + at, text.size() - at) == 0) ++at;
    out.push_back(text.substr(run_begin, at - run_begin));
    valid_begin = at;
  }
  split_valid(text.substr(valid_begin), match.get(), out);
  return out;
}

}  // namespace retain
