// Dropout with the exact random stream of tfjs's tf.dropout(x, rate, undefined, seed).
//
// tfjs draws the mask with seedrandom's Alea generator (J. Baagøe): state doubles s0, s1, s2 in
// [0, 1) and a carry c, stepped as t = 2091639·s0 + c·2⁻³², c = ⌊t⌋, s2 = t − c. Every state is a
// multiple of 2⁻³² (Mash seeds it that way, and the step keeps it), so with S = s·2³² the step is
// exact 64-bit integer arithmetic: T = 2091639·S0 + c, c = T >> 32, S2 = T mod 2³². That gives the
// same numbers as the JS doubles bit for bit, at a few cycles per element instead of a JS loop.
// The mask then follows tf.dropout's float32 ops: m = floor(u + keep) / keep, y = x·m.
#include "common.h"
#include "alea.h"
#include <cmath>

namespace lowrank {

// dropout(x, y, mult, keep, states, chunk): y = x·mult, mult = floor(u + keep) / keep, u the
// float32 uniforms Alea yields, drawn as substreams of `chunk` elements from `states` (Float64Array
// of (s0, s1, s2, c) per substream, exact integers; see alea.h).
static Napi::Value Dropout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 6, "dropout")) return env.Undefined();
  Raw xr = raw(info[0]);
  const float* x = static_cast<const float*>(xr.data);
  float* y = f32(info[1]);
  float* mult = f32(info[2]);
  const float keep = static_cast<float>(dbl(info, 3));
  Raw st = raw(info[4]);
  const int64_t chunk = num(info, 5);
  const int64_t n = static_cast<int64_t>(xr.length);
  aleaUniforms(n, static_cast<const double*>(st.data), static_cast<int64_t>(st.length) / 4, chunk,
               [&](int64_t i, float u) {
                 const float m = std::floor(u + keep) / keep;
                 mult[i] = m;
                 y[i] = x[i] * m;
               });
  return env.Undefined();
}

void registerRandom(Napi::Env env, Napi::Object exports) {
  exports.Set("dropout", Napi::Function::New(env, Dropout));
}

}  // namespace lowrank
