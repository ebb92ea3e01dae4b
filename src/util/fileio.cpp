// Durable file and folder writes (see fileio.h): write to a temp name, fsync, rename into place,
// fsync the parent folder so the rename itself survives a crash.
//
// Plain POSIX calls rather than iostreams, because only they report errno (which the messages
// carry) and give us fsync.
#include "retain/fileio.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <istream>
#include <system_error>

#include "retain/errors.h"
#include "retain/log.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

// `errno` is read first thing, before anything else can overwrite it.
[[noreturn]] void throw_errno(const std::string& path, const std::string& action) {
  const int err = errno;
  throw Error(path + ": " + action + ": " + std::strerror(err));
}

// Closes on scope exit so that every early throw releases the descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // close() can report a deferred write error (NFS), so the success path checks it.
  void close_checked(const std::string& path) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw_errno(path, "cannot close");
  }

 private:
  int fd_;
};

// "a/b/" and "a/b" name the same folder; its parent is "a", and "." for a bare name.
fs::path parent_of(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  fs::path parent = p.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

std::string without_trailing_slash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

void write_all(int fd, const std::string& bytes, const std::string& path) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(path, "cannot write");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

bool exists_no_follow(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic_streamed(path, [&](const std::function<void(const std::string&)>& write) { write(bytes); });
}

void write_file_atomic_streamed(const std::string& path,
                                const std::function<void(const std::function<void(const std::string&)>&)>& produce) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw_errno(tmp, "cannot create");
    produce([&](const std::string& chunk) { write_all(fd.get(), chunk, tmp); });
    if (::fsync(fd.get()) != 0) throw_errno(tmp, "cannot fsync");
    fd.close_checked(tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw_errno(path, "cannot rename " + tmp + " to it");
  } catch (...) {
    ::unlink(tmp.c_str());  // best effort: the old file is untouched either way
    throw;
  }
  fsync_path(parent_of(path).string());
}

std::string read_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw_errno(path, "cannot open for reading");
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) throw_errno(path, "cannot stat");
  if (S_ISDIR(st.st_mode)) throw Error(path + ": is a folder, expected a file");
  std::string out;
  if (st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  // Read to EOF rather than trusting st_size, which is 0 for /proc files and pipes.
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(path, "cannot read");
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void fsync_path(const std::string& path) {
  // O_RDONLY works for folders too, and fsync on a read-only descriptor is allowed on Linux.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw_errno(path, "cannot open to fsync");
  if (::fsync(fd.get()) != 0) throw_errno(path, "cannot fsync");
}

void commit_directory(const std::string& tmp_dir, const std::string& final_dir, bool replace) {
  const std::string tmp = without_trailing_slash(tmp_dir);
  const std::string fin = without_trailing_slash(final_dir);
  struct stat st;
  if (::stat(tmp.c_str(), &st) != 0) throw_errno(tmp, "cannot commit folder");
  if (!S_ISDIR(st.st_mode)) throw Error(tmp + ": cannot commit: not a folder");

  // Every file's data and every folder's entries must be on disk before the rename publishes them.
  std::error_code ec;
  for (fs::recursive_directory_iterator it(tmp, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::file_status status = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_regular_file(status) || fs::is_directory(status)) fsync_path(it->path().string());
  }
  if (ec) throw Error(tmp + ": cannot list folder: " + ec.message());
  fsync_path(tmp);

  const bool had_final = exists_no_follow(fin);
  const std::string old = fin + ".old-" + std::to_string(::getpid());
  if (had_final) {
    if (!replace) throw Error(fin + ": already exists");
    // A leftover from an earlier crashed run with the same pid would make the rename fail.
    fs::remove_all(old, ec);
    if (::rename(fin.c_str(), old.c_str()) != 0) throw_errno(fin, "cannot move aside to " + old);
  }
  if (::rename(tmp.c_str(), fin.c_str()) != 0) {
    const int err = errno;
    if (had_final) ::rename(old.c_str(), fin.c_str());  // put the previous version back
    errno = err;
    throw_errno(fin, "cannot rename " + tmp + " to it");
  }
  fsync_path(parent_of(fin).string());

  if (had_final) {
    // The new version is committed; failing to delete the old one only wastes space, so it is
    // logged rather than reported as a failed commit.
    fs::remove_all(old, ec);
    if (ec) log()->warn("{}: could not remove the replaced version: {}", old, ec.message());
  }
}

std::string make_temp_dir_beside(const std::string& final_dir) {
  static std::atomic<unsigned> counter{0};
  const std::string base =
      without_trailing_slash(final_dir) + ".tmp-" + std::to_string(::getpid()) + "-";
  // A folder with the same name can be left by a crashed process that had our pid: skip it.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const std::string dir = base + std::to_string(counter.fetch_add(1));
    if (::mkdir(dir.c_str(), 0755) == 0) return dir;
    if (errno != EEXIST) throw_errno(dir, "cannot create temporary folder");
  }
  throw Error(base + "*: cannot create temporary folder: too many leftovers");
}

std::string utc_timestamp() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::gmtime(&t));
  return buf;
}

void build_directory(const std::string& final_dir, bool replace,
                     const std::function<void(const std::string& tmp)>& fill) {
  const std::string tmp = make_temp_dir_beside(final_dir);
  try {
    fill(tmp);
    commit_directory(tmp, final_dir, replace);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    throw;
  }
}

void copy_file_checked(const std::string& from, const std::string& to) {
  Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) throw_errno(from, "cannot open");
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (out.get() < 0) throw_errno(to, "cannot create");
  std::string buffer(size_t{1} << 20, '\0');
  for (;;) {
    const ssize_t n = ::read(in.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(from, "cannot read");
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out.get(), buffer.data() + done, size_t(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) throw_errno(to, "cannot write");
      done += w;
    }
  }
  out.close_checked(to);
}

LineRead read_line_bounded(std::istream& in, std::string& line, size_t max_bytes) {
  line.clear();
  std::streambuf* buf = in.rdbuf();
  bool any = false, too_long = false;
  for (;;) {
    const int c = buf->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      if (!any) return LineRead::kEnd;
      break;
    }
    any = true;
    if (c == '\n') break;
    if (too_long) continue;
    if (line.size() == max_bytes) {
      too_long = true;
      std::string().swap(line);  // give the memory back while the rest is skipped
      continue;
    }
    line.push_back(static_cast<char>(c));
  }
  if (too_long) return LineRead::kTooLong;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return LineRead::kLine;
}

std::string line_too_long_message(size_t max_bytes) {
  return "the line is longer than " + std::to_string(max_bytes) + " bytes (retain's limit for one line)";
}

}  // namespace retain
