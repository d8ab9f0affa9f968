// The adapted linear layer's rank-r products alone (native/src/adapter_kernels.h), at the reference
// encoder's shapes (1024 rows, r = 12, 384 or 1536 columns, with and without the dropout mask):
// best of 30 calls each, in ms, and the same three products (unmasked) through OpenBLAS's sgemm on
// the threads OMP_NUM_THREADS gives it. No N-API, no tfjs: the kernels as the addon compiles them.
//   g++ -O3 -march=native -fopenmp -std=c++17 -fno-math-errno bench/adapter_kernels.cc -o /tmp/adapter_kernels -lopenblas
//   OMP_NUM_THREADS=1 /tmp/adapter_kernels
#include "../native/src/adapter_kernels.h"
#include <cblas.h>
#include <chrono>
#include <cstdio>
#include <random>

using namespace lowrank;

template <typename F>
static double best(F f) {
  double b = 1e9;
  for (int i = 0; i < 30; i++) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    b = std::min(b, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return b;
}

int main() {
  const int64_t rows = 1024, r = 12;
  const float kept = 1.f / 0.9f;
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (const int64_t cols : {int64_t(384), int64_t(1536)}) {
    std::vector<float> x(rows * cols), m(r * cols), h(rows * r), y(rows * cols), g(r * cols);
    std::vector<uint8_t> mask(rows * cols);
    for (auto& v : x) v = u(gen);
    for (auto& v : m) v = u(gen);
    for (auto& v : h) v = u(gen);
    for (auto& v : mask) v = u(gen) > -0.8f;  // keep 90 %
    std::printf(
        "cols %ld: X·Mᵀ %.3f (masked %.3f)  Y += H·M %.3f (masked %.3f)  Hᵀ·X %.3f (masked %.3f) ms\n",
        static_cast<long>(cols), best([&] { rowDots(x.data(), nullptr, 1.f, m.data(), h.data(), rows, cols, r); }),
        best([&] { rowDots(x.data(), mask.data(), kept, m.data(), h.data(), rows, cols, r); }),
        best([&] { rowCombine(h.data(), m.data(), y.data(), nullptr, 1.f, rows, cols, r); }),
        best([&] { rowCombine(h.data(), m.data(), y.data(), mask.data(), kept, rows, cols, r); }),
        best([&] { colReduce(x.data(), nullptr, 1.f, h.data(), g.data(), rows, cols, r); }),
        best([&] { colReduce(x.data(), mask.data(), kept, h.data(), g.data(), rows, cols, r); }));
    std::printf(
        "  OpenBLAS: X·Mᵀ %.3f  Y += H·M %.3f  Hᵀ·X %.3f ms\n",
        best([&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r, cols, 1.f, x.data(), cols, m.data(), cols,
                      0.f, h.data(), r);
        }),
        best([&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, r, 1.f, h.data(), r, m.data(), cols,
                      1.f, y.data(), cols);
        }),
        best([&] {
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, cols, rows, 1.f, h.data(), r, x.data(), cols, 0.f,
                      g.data(), cols);
        }));
  }
  return 0;
}
