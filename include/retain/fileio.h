// Durable file writes: temp file, fsync, rename. A reader never sees a half-written file.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

namespace retain {

// Writes `bytes` to `path` atomically: PATH.tmp-<pid>, fsync, rename over PATH, fsync the folder.
// Throws Error (with the path and errno text) on failure, leaving any old PATH untouched.
void write_file_atomic(const std::string& path, const std::string& bytes);
// The same for a file written piece by piece: `produce(write)` calls write(chunk) for each piece
// (a database streamed out, say); an exception from it leaves any old PATH untouched.
void write_file_atomic_streamed(const std::string& path,
                                const std::function<void(const std::function<void(const std::string&)>&)>& produce);

// Copies the regular file `from` to `to` (created or truncated), with read(2)/write(2), so that a
// full disk says "No space left on device" (std::filesystem::copy_file's sendfile can report it
// as an I/O error). Throws Error naming the path and the errno text. Not durable by itself: the
// caller fsyncs (build_directory does).
void copy_file_checked(const std::string& from, const std::string& to);

// Reads a whole file. Throws Error naming the path when it cannot be read.
std::string read_file(const std::string& path);

// The longest line retain reads from a JSONL file or stream (16 MiB; a chat example of a
// 128k-token context is about 0.5 MiB). Enforced while reading, so that a file of one endless
// line never has to fit in memory.
inline constexpr size_t kMaxLineBytes = size_t{16} << 20;
enum class LineRead { kLine, kTooLong, kEnd };
// Reads the next line (without its '\n' or a trailing '\r') into `line`. kTooLong: the line had
// more than `max_bytes` bytes; `line` is empty and the rest of that line has been skipped, so the
// caller can report it and go on. kEnd: nothing left (a final line without '\n' is a line).
LineRead read_line_bounded(std::istream& in, std::string& line, size_t max_bytes = kMaxLineBytes);
// The rule and message of a line over the limit, the same for every reader.
inline constexpr const char* kLineTooLongRule = "line_too_long";
std::string line_too_long_message(size_t max_bytes = kMaxLineBytes);

// fsync a file or a folder by path. Throws Error on failure.
void fsync_path(const std::string& path);

// Moves the fully written folder `tmp_dir` to `final_dir` atomically: fsyncs every file in
// tmp_dir and tmp_dir itself, then renames. If final_dir exists and `replace` is true it is swapped
// out (renamed aside, then removed) — otherwise throws Error. fsyncs the parent folder at the end.
void commit_directory(const std::string& tmp_dir, const std::string& final_dir, bool replace);

// A fresh temporary folder beside `final_dir` (FINAL.tmp-<pid>-<n>), created empty.
std::string make_temp_dir_beside(const std::string& final_dir);

// Builds the folder `final_dir` atomically: `fill(tmp)` writes into a fresh temporary folder
// beside it, which is then committed (commit_directory with `replace`). When `fill` or the commit
// throws, the temporary folder is removed and the exception propagates: nothing is left behind.
void build_directory(const std::string& final_dir, bool replace,
                     const std::function<void(const std::string& tmp)>& fill);

// The current UTC time as YYYYmmdd-HHMMSS, for the names of run and sweep folders.
std::string utc_timestamp();

}  // namespace retain
