// One zstd context of each kind per thread, reused. ZSTD_compress and ZSTD_decompress make and
// free a context per call, and making one probes the CPU with `cpuid`, which on a virtual
// machine exits to the hypervisor: measured at 2.3% of a standby ferryd's CPU at 2,000
// transactions/s (bench/side_by_side/FINDINGS.md). Each call starts a fresh frame, but
// parameters set on a context persist: a caller that sets any resets the context first
// (ZSTD_CCtx_reset / ZSTD_DCtx_reset with ZSTD_reset_session_and_parameters).
//
// Example:
//   ZSTD_DCtx* dctx = ThreadDecompressionContext();  // null only when out of memory
//   const size_t n = dctx != nullptr ? ZSTD_decompressDCtx(dctx, out, cap, in, size)
//                                    : ZSTD_decompress(out, cap, in, size);
#pragma once

// zstd.h's own declarations, so that this header does not need zstd's.
typedef struct ZSTD_CCtx_s ZSTD_CCtx;
typedef struct ZSTD_DCtx_s ZSTD_DCtx;

namespace ferry {

// The calling thread's contexts, made on first use and freed when the thread ends. Null only
// when zstd could not allocate one; callers fall back to the one-shot functions.
ZSTD_CCtx* ThreadCompressionContext();
ZSTD_DCtx* ThreadDecompressionContext();

}  // namespace ferry
