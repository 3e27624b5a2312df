// One zstd context of each kind per thread, reused. ZSTD_compress and ZSTD_decompress make and
// free a context per call, and making one probes the CPU with `cpuid`, which on a virtual
// machine exits to the hypervisor: measured at 2.3% of a standby ferryd's CPU at 2,000
// transactions/s (bench/side_by_side/FINDINGS.md). Each ZSTD_compressCCtx and
// ZSTD_decompressDCtx starts a fresh frame, so a context carries nothing from one call to the
// next.
//
// Example:
//   ZSTD_DCtx* dctx = ThreadDecompressionContext();  // null only when out of memory
//   const size_t n = dctx != nullptr ? ZSTD_decompressDCtx(dctx, out, cap, in, size)
//                                    : ZSTD_decompress(out, cap, in, size);
#pragma once

#include <zstd.h>

namespace ferry {

// The calling thread's contexts, made on first use and freed when the thread ends. Null only
// when zstd could not allocate one; callers fall back to the one-shot functions.
ZSTD_CCtx* ThreadCompressionContext();
ZSTD_DCtx* ThreadDecompressionContext();

}  // namespace ferry
