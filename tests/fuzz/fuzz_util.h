// Shared by the fuzz targets: read every byte of each accepted tensor, so ASan flags any
// tensor a parser accepted whose data is not really inside the input.
#pragma once
#include <cstdint>
#include <vector>

#include "formats/model_file.h"

namespace edgeglm::fuzz {

inline void touch_tensors(const std::vector<formats::TensorInfo>& tensors) {
  volatile uint8_t sink = 0;
  for (const auto& t : tensors) {
    if (t.nbytes == 0) continue;
    sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
    (void)t.view();
  }
  (void)sink;
}

}  // namespace edgeglm::fuzz
