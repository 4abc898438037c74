"""The CPU's measured FMA peak: a C loop of independent vector FMAs, compiled and run now."""

import os
import subprocess

# The FMA peak probe: independent chains of register-resident vector FMAs on every core, so the
# figure is what the FMA units can do, not what a library's matmul reaches. 12 chains cover the
# FMA latency (4 cycles) times the FMA ports (2) with room. Mode 0 times fp32 FMAs (2 flops per
# lane), mode 1 AVX512_BF16 dot products (vdpbf16ps: 2 bf16 products and their sum added to an
# fp32 lane, 4 flops per fp32 lane), the peak of the 16-bit convolutions.
FMA_SOURCE = r"""
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifndef CHAINS
#define CHAINS 12
#endif
static long iters;
static int mode;
static float sink[64];
#pragma GCC optimize("unroll-loops")
static void *work(void *arg) {
  (void)arg;
#if defined(__AVX512F__)
  __m512 acc[CHAINS];
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
#if defined(__AVX512BF16__)
  const __m512bh p = (__m512bh)_mm512_set1_epi16(0x3f80), q = (__m512bh)_mm512_set1_epi16(0x3380);
#endif
  if (mode == 0) {
    for (long n = 0; n < iters; n++)
      for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  } else {
#if defined(__AVX512BF16__)
    for (long n = 0; n < iters; n++)
      for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_dpbf16_ps(acc[i], p, q);
#endif
  }
  float s = 0;
  for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_ps(acc[i]);
#else
  __m256 acc[CHAINS];
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long n = 0; n < iters; n++)
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  float s = 0, t[8];
  for (int i = 0; i < CHAINS; i++) { _mm256_storeu_ps(t, acc[i]); for (int j = 0; j < 8; j++) s += t[j]; }
#endif
  sink[0] += s;
  return NULL;
}
int main(int argc, char **argv) {
  int threads = atoi(argv[1]);
  iters = atol(argv[2]);
  mode = atoi(argv[3]);
#if defined(__AVX512F__)
  const double lanes = 16.0;
#else
  const double lanes = 8.0;
#endif
  /* flops per instruction: an fp32 FMA is 2 per lane; a bf16 dot product 4 (2 products, 2 adds) */
  const double flops = (mode == 0 ? 2.0 : 4.0) * lanes * CHAINS * (double)iters * threads;
  double best = 0;
  for (int rep = 0; rep < 5; rep++) {
    pthread_t tid[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, work, NULL);
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    if (flops / s > best) best = flops / s;
  }
  printf("%.3f %g\n", best / 1e9, sink[0]);
  return 0;
}
"""


def _cpu_flags() -> set[str]:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          return set(line.split(":", 1)[1].split())
  except OSError:
    pass
  return set()


def fma_peak(cc: str = "gcc", threads: int | None = None, iters: int = 20_000_000) -> dict:
  """GFLOP/s of the FMA loop above on `threads` cores (all by default), compiled now with cc.

  Returns {"measured": False, "why": ...} when there is no compiler or no AVX2/AVX-512.
  """
  import shutil
  import tempfile

  threads = threads or os.cpu_count() or 1
  cpu = _cpu_flags()
  if shutil.which(cc) is None:
    return {"measured": False, "why": f"no C compiler {cc!r} on PATH"}
  if "avx512f" in cpu:
    isa, options = "avx512", ["-mavx512f", "-mfma"]
    if "avx512_bf16" in cpu:
      isa, options = "avx512+bf16", options + ["-mavx512bf16"]
  elif "avx2" in cpu and "fma" in cpu:
    isa, options = "avx2", ["-mavx2", "-mfma"]
  else:
    return {"measured": False, "why": "the CPU has neither AVX-512 nor AVX2 FMA"}
  with tempfile.TemporaryDirectory() as tmp:
    source, binary = os.path.join(tmp, "fma.c"), os.path.join(tmp, "fma")
    with open(source, "w") as f:
      f.write(FMA_SOURCE)
    build = subprocess.run(
      [cc, "-O3", "-funroll-loops", "-pthread", *options, source, "-o", binary],
      capture_output=True,
      text=True,
      check=False,
    )
    if build.returncode != 0:
      return {"measured": False, "why": f"{cc} failed: {build.stderr.strip()[-300:]}"}
    result = {"measured": True, "isa": isa, "threads": threads}
    modes = [("fp32", 0)] + ([("bf16", 1)] if isa == "avx512+bf16" else [])
    for label, mode in modes:
      out = subprocess.run(
        [binary, str(threads), str(iters), str(mode)], capture_output=True, text=True, check=True
      )
      result[f"{label}_gflops_per_s"] = float(out.stdout.split()[0])
  return result
