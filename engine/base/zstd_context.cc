#include "engine/base/zstd_context.h"

#include <zstd.h>

namespace ferry {

ZSTD_CCtx* ThreadCompressionContext() {
  struct Holder {
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    ~Holder() { ZSTD_freeCCtx(cctx); }
  };
  thread_local Holder holder;
  return holder.cctx;
}

ZSTD_DCtx* ThreadDecompressionContext() {
  struct Holder {
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    ~Holder() { ZSTD_freeDCtx(dctx); }
  };
  thread_local Holder holder;
  return holder.dctx;
}

}  // namespace ferry
