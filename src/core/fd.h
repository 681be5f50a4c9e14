// RAII owners for file descriptors and memory mappings.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <utility>

namespace jarvis {

// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Owns one mmap()ed region; unmaps it on destruction. Move-only.
class MappedRegion {
 public:
  MappedRegion() = default;
  MappedRegion(void* addr, size_t len) : addr_(addr), len_(len) {}
  MappedRegion(MappedRegion&& o) noexcept
      : addr_(std::exchange(o.addr_, MAP_FAILED)), len_(std::exchange(o.len_, 0)) {}
  MappedRegion& operator=(MappedRegion&& o) noexcept {
    if (this != &o) {
      reset();
      addr_ = std::exchange(o.addr_, MAP_FAILED);
      len_ = std::exchange(o.len_, 0);
    }
    return *this;
  }
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;
  ~MappedRegion() { reset(); }

  void* get() const { return addr_; }
  size_t size() const { return len_; }
  bool valid() const { return addr_ != MAP_FAILED; }
  void reset() {
    if (addr_ != MAP_FAILED) ::munmap(addr_, len_);
    addr_ = MAP_FAILED;
    len_ = 0;
  }

 private:
  void* addr_ = MAP_FAILED;
  size_t len_ = 0;
};

// Zero-filled anonymous memory of `bytes` rounded up to whole 2 MiB pages, aligned to 2 MiB
// and advised MADV_HUGEPAGE, so that the kernel backs it with transparent huge pages where THP
// is "always" or "madvise" (small pages otherwise): random access over megabytes then misses
// the TLB far less. Pages are faulted in on first touch. An invalid region, errno set, when the
// mapping fails.
MappedRegion MapHugeAnonymous(size_t bytes);

}  // namespace jarvis
