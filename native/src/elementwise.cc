// Elementwise kernels: binary ops with full broadcasting, unary math, select, cast.
// Shapes arrive collapsed by the TypeScript side (adjacent dims merged where both operands allow),
// with per-operand strides that are 0 on broadcast dimensions.
#include "common.h"
#include <cmath>
#include <algorithm>

namespace lowrank {

enum BinaryOp {
  kAdd = 0, kSub, kMul, kDiv, kMax, kMin, kPow, kSquaredDiff,
  kEqual = 10, kNotEqual, kLess, kLessEqual, kGreater, kGreaterEqual
};

template <int Op> struct Bin;
template <> struct Bin<kAdd> { static float f(float a, float b) { return a + b; } };
template <> struct Bin<kSub> { static float f(float a, float b) { return a - b; } };
template <> struct Bin<kMul> { static float f(float a, float b) { return a * b; } };
template <> struct Bin<kDiv> { static float f(float a, float b) { return a / b; } };
// NaN propagates like tfjs-backend-cpu's maximum/minimum.
template <> struct Bin<kMax> { static float f(float a, float b) { return (a != a || b != b) ? NAN : (a > b ? a : b); } };
template <> struct Bin<kMin> { static float f(float a, float b) { return (a != a || b != b) ? NAN : (a < b ? a : b); } };
template <> struct Bin<kPow> { static float f(float a, float b) { return std::pow(a, b); } };
template <> struct Bin<kSquaredDiff> { static float f(float a, float b) { float d = a - b; return d * d; } };
template <> struct Bin<kEqual> { static uint8_t f(float a, float b) { return a == b; } };
template <> struct Bin<kNotEqual> { static uint8_t f(float a, float b) { return a != b; } };
template <> struct Bin<kLess> { static uint8_t f(float a, float b) { return a < b; } };
template <> struct Bin<kLessEqual> { static uint8_t f(float a, float b) { return a <= b; } };
template <> struct Bin<kGreater> { static uint8_t f(float a, float b) { return a > b; } };
template <> struct Bin<kGreaterEqual> { static uint8_t f(float a, float b) { return a >= b; } };

// One innermost row, specialised on whether each operand advances (stride 1) or repeats (stride 0),
// so the common cases vectorise.
template <int Op, typename Out>
static inline void row(const float* a, const float* b, Out* o, int64_t n, int64_t sa, int64_t sb) {
  if (sa == 1 && sb == 1) for (int64_t i = 0; i < n; i++) o[i] = Bin<Op>::f(a[i], b[i]);
  else if (sa == 1) { const float bv = b[0]; for (int64_t i = 0; i < n; i++) o[i] = Bin<Op>::f(a[i], bv); }
  else if (sb == 1) { const float av = a[0]; for (int64_t i = 0; i < n; i++) o[i] = Bin<Op>::f(av, b[i]); }
  else { const Out v = Bin<Op>::f(a[0], b[0]); for (int64_t i = 0; i < n; i++) o[i] = v; }
}

template <int Op, typename Out>
static void binary(const float* a, const float* b, Out* o, const int32_t* shape, const int32_t* as,
                   const int32_t* bs, int rank) {
  int64_t total = 1;
  for (int d = 0; d < rank; d++) total *= shape[d];
  if (total == 0) return;
  const int64_t inner = shape[rank - 1];
  const int64_t rows = total / inner;
#pragma omp parallel for if (total > kParallelGrain) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    int64_t rem = r, ao = 0, bo = 0;
    for (int d = rank - 2; d >= 0; d--) {
      const int64_t idx = rem % shape[d];
      rem /= shape[d];
      ao += idx * as[d];
      bo += idx * bs[d];
    }
    row<Op, Out>(a + ao, b + bo, o + r * inner, inner, as[rank - 1], bs[rank - 1]);
  }
}

// binary(op, a, b, out, shape, aStrides, bStrides)
static Napi::Value Binary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 7, "binary")) return env.Undefined();
  const int op = static_cast<int>(num(info, 0));
  const float* a = f32(info[1]);
  const float* b = f32(info[2]);
  Raw sh = raw(info[4]);
  const int32_t* shape = static_cast<int32_t*>(sh.data);
  const int32_t* as = i32(info[5]);
  const int32_t* bs = i32(info[6]);
  const int rank = static_cast<int>(sh.length);
  float* of = op < kEqual ? f32(info[3]) : nullptr;
  uint8_t* ob = op >= kEqual ? u8(info[3]) : nullptr;
  switch (op) {
    case kAdd: binary<kAdd>(a, b, of, shape, as, bs, rank); break;
    case kSub: binary<kSub>(a, b, of, shape, as, bs, rank); break;
    case kMul: binary<kMul>(a, b, of, shape, as, bs, rank); break;
    case kDiv: binary<kDiv>(a, b, of, shape, as, bs, rank); break;
    case kMax: binary<kMax>(a, b, of, shape, as, bs, rank); break;
    case kMin: binary<kMin>(a, b, of, shape, as, bs, rank); break;
    case kPow: binary<kPow>(a, b, of, shape, as, bs, rank); break;
    case kSquaredDiff: binary<kSquaredDiff>(a, b, of, shape, as, bs, rank); break;
    case kEqual: binary<kEqual>(a, b, ob, shape, as, bs, rank); break;
    case kNotEqual: binary<kNotEqual>(a, b, ob, shape, as, bs, rank); break;
    case kLess: binary<kLess>(a, b, ob, shape, as, bs, rank); break;
    case kLessEqual: binary<kLessEqual>(a, b, ob, shape, as, bs, rank); break;
    case kGreater: binary<kGreater>(a, b, ob, shape, as, bs, rank); break;
    case kGreaterEqual: binary<kGreaterEqual>(a, b, ob, shape, as, bs, rank); break;
    default: Napi::TypeError::New(env, "internal: unknown binary op").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

enum UnaryOp {
  kExp = 0, kLog, kLog1p, kSqrt, kRsqrt, kSquare, kNeg, kAbs, kTanh, kSigmoid, kErf, kRelu, kStep,
  kReciprocal, kExpm1, kSoftplus, kSign, kRelu6, kElu, kLeakyRelu, kSin, kCos, kFloor, kCeil, kClip
};

static inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

template <int Op>
static inline float un(float x, float p, float q) {
  switch (Op) {
    case kExp: return std::exp(x);
    case kLog: return std::log(x);
    case kLog1p: return std::log1p(x);
    case kSqrt: return std::sqrt(x);
    case kRsqrt: return 1.f / std::sqrt(x);
    case kSquare: return x * x;
    case kNeg: return -x;
    case kAbs: return std::fabs(x);
    case kTanh: return std::tanh(x);
    case kSigmoid: return sigmoid(x);
    case kErf: return std::erf(x);
    case kRelu: return x != x ? x : (x > 0.f ? x : 0.f);
    case kStep: return x != x ? NAN : (x > 0.f ? 1.f : p);
    case kReciprocal: return 1.f / x;
    case kExpm1: return std::expm1(x);
    // Same thresholds as tfjs softplus: exact outside ±(log(eps)+2), log1p(exp) between.
    case kSoftplus: return x > 13.9424f ? x : (x < -13.9424f ? std::exp(x) : std::log1p(std::exp(x)));
    case kSign: return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);
    case kRelu6: return std::min(std::max(x, 0.f), 6.f);
    case kElu: return x >= 0.f ? x : std::expm1(x);
    case kLeakyRelu: return x < 0.f ? p * x : x;
    case kSin: return std::sin(x);
    case kCos: return std::cos(x);
    case kFloor: return std::floor(x);
    case kCeil: return std::ceil(x);
    case kClip: return x != x ? x : std::min(std::max(x, p), q);
    default: return NAN;
  }
}

template <int Op>
static void unary(const float* x, float* o, int64_t n, float p, float q) {
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) o[i] = un<Op>(x[i], p, q);
}

using UnaryFn = void (*)(const float*, float*, int64_t, float, float);
static const UnaryFn kUnary[] = {
    unary<kExp>, unary<kLog>, unary<kLog1p>, unary<kSqrt>, unary<kRsqrt>, unary<kSquare>,
    unary<kNeg>, unary<kAbs>, unary<kTanh>, unary<kSigmoid>, unary<kErf>, unary<kRelu>,
    unary<kStep>, unary<kReciprocal>, unary<kExpm1>, unary<kSoftplus>, unary<kSign>, unary<kRelu6>,
    unary<kElu>, unary<kLeakyRelu>, unary<kSin>, unary<kCos>, unary<kFloor>, unary<kCeil>, unary<kClip>};

// unary(op, x, out, p, q): out[i] = op(x[i]) with op parameters p (alpha) and q.
static Napi::Value Unary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 5, "unary")) return env.Undefined();
  const int op = static_cast<int>(num(info, 0));
  if (op < 0 || op >= static_cast<int>(sizeof(kUnary) / sizeof(kUnary[0]))) {
    Napi::TypeError::New(env, "internal: unknown unary op").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Raw x = raw(info[1]);
  kUnary[op](static_cast<float*>(x.data), f32(info[2]), static_cast<int64_t>(x.length),
             static_cast<float>(dbl(info, 3)), static_cast<float>(dbl(info, 4)));
  return env.Undefined();
}

// select(cond u8, a, b, out, inner): out = cond ? a : b, where cond has one entry per `inner`
// elements (inner = 1 for a full-shape cond; the row size for tfjs's rank-1 cond).
static Napi::Value Select(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 5, "select")) return env.Undefined();
  const uint8_t* c = u8(info[0]);
  const float* a = f32(info[1]);
  const float* b = f32(info[2]);
  Raw o = raw(info[3]);
  float* out = static_cast<float*>(o.data);
  const int64_t n = static_cast<int64_t>(o.length), inner = num(info, 4);
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = c[i / inner] ? a[i] : b[i];
  return env.Undefined();
}

// cast(x, out, from, to) with codes 0 float32, 1 int32, 2 bool (uint8).
static Napi::Value Cast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 4, "cast")) return env.Undefined();
  Raw x = raw(info[0]);
  void* o = raw(info[1]).data;
  const int from = static_cast<int>(num(info, 2)), to = static_cast<int>(num(info, 3));
  const int64_t n = static_cast<int64_t>(x.length);
  auto run = [&](auto* in) {
    for (int64_t i = 0; i < n; i++) {
      if (to == 0) static_cast<float*>(o)[i] = static_cast<float>(in[i]);
      else if (to == 1) {
        // Truncation like Int32Array.from; NaN and out-of-range values (UB in C++) become 0 / clamp.
        const double v = static_cast<double>(in[i]);
        static_cast<int32_t*>(o)[i] = v != v ? 0 : static_cast<int32_t>(std::min(std::max(v, -2147483648.0), 2147483647.0));
      }
      else static_cast<uint8_t*>(o)[i] = in[i] != 0;
    }
  };
  if (from == 0) run(static_cast<float*>(x.data));
  else if (from == 1) run(static_cast<int32_t*>(x.data));
  else run(static_cast<uint8_t*>(x.data));
  return env.Undefined();
}

// AdaLoRA's sensitivity EMA over n elements (RankAllocator.update_ipt): ipt = |p·g|,
// avgI = i0·β1 + ipt·(1−β1), avgU = u0·β2 + |ipt − avgI|·(1−β2); i0/u0 null start from zeros.
// One pass instead of eight small kernels; no FMA contraction, so each product and sum rounds to
// float32 exactly as the composed tfjs ops do (bit-identical to them).
__attribute__((optimize("fp-contract=off"))) static void sensitivityPass(
    const float* p, const float* g, const float* i0, const float* u0, float* ipt, float* avgI, float* avgU,
    int64_t n, double beta1, double beta2) {
  const float b1 = static_cast<float>(beta1), c1 = static_cast<float>(1 - beta1);
  const float b2 = static_cast<float>(beta2), c2 = static_cast<float>(1 - beta2);
  for (int64_t i = 0; i < n; i++) {
    const float ip = std::fabs(p[i] * g[i]);
    const float decayI = (i0 ? i0[i] : 0.f) * b1;
    const float newI = ip * c1;
    const float ai = decayI + newI;
    const float decayU = (u0 ? u0[i] : 0.f) * b2;
    const float newU = std::fabs(ip - ai) * c2;
    ipt[i] = ip;
    avgI[i] = ai;
    avgU[i] = decayU + newU;
  }
}

static const float* optionalF32(const Napi::Value& v) { return v.IsTypedArray() ? f32(v) : nullptr; }

// sensitivityEma(p, g, i0|null, u0|null, ipt, avgI, avgU, beta1, beta2): one parameter.
static Napi::Value SensitivityEma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 9, "sensitivityEma")) return env.Undefined();
  Raw pr = raw(info[0]);
  sensitivityPass(static_cast<const float*>(pr.data), f32(info[1]), optionalF32(info[2]), optionalF32(info[3]),
                  f32(info[4]), f32(info[5]), f32(info[6]), static_cast<int64_t>(pr.length), dbl(info, 7),
                  dbl(info, 8));
  return env.Undefined();
}

// sensitivityEmaAll([p], [g], [i0|null], [u0|null], [ipt], [avgI], [avgU], beta1, beta2): every
// tracked parameter of an adapter in one call (same bits as sensitivityEma per parameter).
static Napi::Value SensitivityEmaAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 9, "sensitivityEmaAll")) return env.Undefined();
  Napi::Array arr[7];
  for (int j = 0; j < 7; j++) arr[j] = info[j].As<Napi::Array>();
  const double beta1 = dbl(info, 7), beta2 = dbl(info, 8);
  for (uint32_t i = 0; i < arr[0].Length(); i++) {
    Raw pr = raw(arr[0].Get(i));
    sensitivityPass(static_cast<const float*>(pr.data), f32(arr[1].Get(i)), optionalF32(arr[2].Get(i)),
                    optionalF32(arr[3].Get(i)), f32(arr[4].Get(i)), f32(arr[5].Get(i)), f32(arr[6].Get(i)),
                    static_cast<int64_t>(pr.length), beta1, beta2);
  }
  return env.Undefined();
}

void registerElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("sensitivityEma", Napi::Function::New(env, SensitivityEma));
  exports.Set("sensitivityEmaAll", Napi::Function::New(env, SensitivityEmaAll));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("select", Napi::Function::New(env, Select));
  exports.Set("cast", Napi::Function::New(env, Cast));
}

}  // namespace lowrank
