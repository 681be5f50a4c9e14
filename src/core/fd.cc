#include "core/fd.h"

#include <cstdint>

namespace jarvis {

MappedRegion MapHugeAnonymous(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t len = (bytes + kHuge - 1) / kHuge * kHuge;
  // Mapped one huge page longer, then trimmed to a 2 MiB boundary at both ends.
  const size_t span = len + kHuge;
  void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return MappedRegion();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHuge - 1) & ~(uintptr_t{kHuge} - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  if (const size_t tail = start + span - (aligned + len); tail > 0) {
    ::munmap(reinterpret_cast<void*>(aligned + len), tail);
  }
  void* mem = reinterpret_cast<void*>(aligned);
  ::madvise(mem, len, MADV_HUGEPAGE);  // a hint: EINVAL where the kernel has no THP
  return MappedRegion(mem, len);
}

}  // namespace jarvis
