// tfjs's dropout uniforms (seedrandom's Alea, see random.cc) drawn from several substreams at once.
// Alea is a lag-3 multiply-with-carry generator: with b = 2³², a = 2091639 and the state as the
// integer W = s0 + s1·b + s2·b² + c·b³, one step is W ← W·b⁻¹ mod (a·b³ − 1) (Couture & L'Ecuyer's
// MWC/LCG equivalence), so the state k steps ahead is W·b⁻ᵏ mod m. The JS side
// (src/tensor/ops/dropout.ts `aleaStreams`) computes the state at the start of each chunk of the
// element range; here each chunk is stepped serially exactly as the single stream would be, so
// element i gets the same uniform as before, four chunks interleaved per thread (independent carry
// chains overlap) and thread groups in parallel.
#pragma once
#include <omp.h>
#include <algorithm>
#include <cstdint>

namespace lowrank {

// Calls emit(i, u_i) for i in [0, n): stream j covers [j·chunk, (j+1)·chunk) from the state
// states[4j .. 4j+3] = (s0, s1, s2, c) as exact integers.
template <typename F>
inline void aleaUniforms(int64_t n, const double* states, int64_t streams, int64_t chunk, F emit) {
  constexpr uint64_t kMul = 2091639;
  constexpr double kTwoPowMinus32 = 2.3283064365386963e-10;
  constexpr int64_t kLanes = 4;
  const int64_t groups = (streams + kLanes - 1) / kLanes;
#pragma omp parallel for if (groups > 1 && n > (int64_t(1) << 15)) schedule(static)
  for (int64_t grp = 0; grp < groups; grp++) {
    uint64_t s0[kLanes], s1[kLanes], s2[kLanes], c[kLanes];
    int64_t begin[kLanes], len[kLanes];
    for (int64_t l = 0; l < kLanes; l++) {
      const int64_t j = grp * kLanes + l;
      const bool live = j < streams;
      s0[l] = live ? static_cast<uint64_t>(states[4 * j]) : 0;
      s1[l] = live ? static_cast<uint64_t>(states[4 * j + 1]) : 0;
      s2[l] = live ? static_cast<uint64_t>(states[4 * j + 2]) : 0;
      c[l] = live ? static_cast<uint64_t>(states[4 * j + 3]) : 0;
      begin[l] = j * chunk;
      len[l] = live ? std::max<int64_t>(0, std::min(chunk, n - begin[l])) : 0;
    }
    const int64_t steps = *std::max_element(len, len + kLanes);
    for (int64_t i = 0; i < steps; i++) {
      for (int64_t l = 0; l < kLanes; l++) {
        const uint64_t t = kMul * s0[l] + c[l];  // < 2^53: the JS double product is exact
        s0[l] = s1[l];
        s1[l] = s2[l];
        c[l] = t >> 32;
        s2[l] = t & 0xffffffffu;
        if (i < len[l]) emit(begin[l] + i, static_cast<float>(static_cast<double>(s2[l]) * kTwoPowMinus32));
      }
    }
  }
}

}  // namespace lowrank
