#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace edgeglm {

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::error(path + ": cannot open: " + std::strerror(errno));
  struct stat st{};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return Status::error(path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::error(path + ": not a regular file");
  }
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = size_t(st.st_size);
  if (m->size_ > 0) {
    void* p = mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return Status::error(path + ": mmap failed: " + std::strerror(e));
    }
    m->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return m;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

bool MappedFile::release(const void* p, size_t n) const {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p), base = reinterpret_cast<uintptr_t>(data_);
  if (!data_ || a < base || n > size_ || a - base > size_ - n) return false;
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (a + page - 1) / page * page, hi = (a + n) / page * page;
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  return true;
}

Result<std::shared_ptr<uint8_t>> allocate_large(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t total = bytes + kHuge;  // room to start on a huge-page boundary
  void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return Status::error("cannot allocate " + std::to_string(bytes >> 20) + " MiB: " + std::strerror(errno));
  const uintptr_t start = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) / kHuge * kHuge;
#ifdef MADV_HUGEPAGE
  madvise(reinterpret_cast<void*>(start), reinterpret_cast<uintptr_t>(p) + total - start, MADV_HUGEPAGE);
#endif
  return std::shared_ptr<uint8_t>(reinterpret_cast<uint8_t*>(start), [p, total](uint8_t*) { munmap(p, total); });
}

Result<std::string> read_text_file(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(path + ": cannot open: " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  std::streamoff n = in.tellg();
  if (n < 0) return Status::error(path + ": cannot read size");
  if (size_t(n) > max_bytes)
    return Status::error(path + ": file too large (" + std::to_string(n) + " bytes)");
  in.seekg(0);
  std::string s(size_t(n), '\0');
  if (n > 0 && !in.read(s.data(), n)) return Status::error(path + ": read failed");
  return s;
}

}  // namespace edgeglm
