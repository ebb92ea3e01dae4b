// SHA-256 (FIPS 180-4): content hashes of replay examples, and later of data files in the registry.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace retain {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental SHA-256: update() any number of times, then finish() once.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // The digest of everything passed to update(). The object must not be used afterwards.
  Sha256Digest finish();

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;
  uint64_t length_ = 0;  // bytes
};

Sha256Digest sha256(std::string_view bytes);
// Lower-case hex, 64 characters.
std::string to_hex(const Sha256Digest& digest);
std::string sha256_hex(std::string_view bytes);
// The hash of a file's bytes, streamed. Throws Error naming the path when it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace retain
