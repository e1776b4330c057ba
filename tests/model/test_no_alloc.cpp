// House rule 3: nothing is allocated on the decode path. Counts global operator new calls while
// decoding tokens through a warmed-up context.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "model/model.h"
#include "test_util.h"

namespace {
std::atomic<long> g_allocs{0};
}

void* operator new(size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

using namespace edgeglm;

TEST(NoAlloc, DecodeAllocatesNothingPerToken) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto m = model::Model::load(test::shared_path("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  ThreadPool pool(2);
  model::ContextOptions co;
  co.n_ctx = 128;
  auto ctx = model::Context::create(**m, co, pool);
  ASSERT_TRUE(ctx.ok());
  int32_t tok = 1;
  ASSERT_TRUE((*ctx)->decode(&tok, 1).is_ok());  // warm-up: per-thread scratch is sized here
  const long before = g_allocs.load();
  for (int i = 0; i < 50; ++i) {
    tok = (tok * 31 + 7) % 512;
    ASSERT_TRUE((*ctx)->decode(&tok, 1).is_ok());
  }
  EXPECT_EQ(g_allocs.load() - before, 0);
}
