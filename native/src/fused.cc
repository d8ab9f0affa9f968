// Fused row kernels: softmax / log-softmax, layer norm and RMS norm (forward + backward) and
// softmax cross-entropy (forward + backward); GELU is in gelu.cc.
// Each replaces a chain of 5-10 elementwise kernels and their intermediate tensors.
#include "common.h"
#include "vecmath.h"
#include "norm_rows.h"
#include "softmax_rows.h"
#include <cmath>
#include <omp.h>
#include <algorithm>

namespace lowrank {

// softmax(x, out, rows, cols, log)
static Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 5, "softmax")) return env.Undefined();
  const float* x = f32(info[0]);
  float* o = f32(info[1]);
  const int64_t rows = num(info, 2), cols = num(info, 3);
  const bool logMode = info[4].As<Napi::Boolean>().Value();
#pragma omp parallel for if (rows * cols > kParallelGrain) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* orow = o + r * cols;
    float mx = -INFINITY;
    for (int64_t c = 0; c < cols; c++) mx = std::max(mx, xr[c]);
    for (int64_t c = 0; c < cols; c++) orow[c] = vexp(xr[c] - mx);  // vectorised (vecmath.h)
    float sum = 0.f;
    for (int64_t c = 0; c < cols; c++) sum += orow[c];
    if (logMode) {
      const float lse = std::log(sum);
      for (int64_t c = 0; c < cols; c++) orow[c] = xr[c] - mx - lse;
    } else {
      const float inv = 1.f / sum;
      for (int64_t c = 0; c < cols; c++) orow[c] *= inv;
    }
  }
  return env.Undefined();
}

// layerNorm(x, gamma, beta|null, out, mean, rstd, rows, cols, eps); gamma may be null (rms: no mean)
// rmsMode = info[9]: RMS norm (no centring, no beta).
static Napi::Value NormForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 10, "normForward")) return env.Undefined();
  const float* x = f32(info[0]);
  const float* g = f32(info[1]);
  const float* b = info[2].IsTypedArray() ? f32(info[2]) : nullptr;
  float* o = f32(info[3]);
  float* mean = f32(info[4]);
  float* rstd = f32(info[5]);
  const int64_t rows = num(info, 6), cols = num(info, 7);
  const float eps = static_cast<float>(dbl(info, 8));
  const bool rms = info[9].As<Napi::Boolean>().Value();
  const int64_t groups = (rows + kNormGroup - 1) / kNormGroup;
#pragma omp parallel for if (rows * cols > kParallelGrain) schedule(static)
  for (int64_t gi = 0; gi < groups; gi++) {
    const int64_t r0 = gi * kNormGroup, n = std::min(kNormGroup, rows - r0);
    const float* xs[kNormGroup];
    float* os[kNormGroup];
    rowPointers(x, r0, n, cols, xs);
    rowPointers(o, r0, n, cols, os);
    normRowsForward(n, xs, g, b, os, cols, eps, rms, mean + r0, rstd + r0);
  }
  return env.Undefined();
}

// normBackward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta|null, rows, cols, rms)
static Napi::Value NormBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 11, "normBackward")) return env.Undefined();
  const float* dy = f32(info[0]);
  const float* x = f32(info[1]);
  const float* g = f32(info[2]);
  const float* mean = f32(info[3]);
  const float* rstd = f32(info[4]);
  float* dx = f32(info[5]);
  float* dg = f32(info[6]);
  float* db = info[7].IsTypedArray() ? f32(info[7]) : nullptr;
  const int64_t rows = num(info, 8), cols = num(info, 9);
  const bool rms = info[10].As<Napi::Boolean>().Value();
  const int64_t groups = (rows + kNormGroup - 1) / kNormGroup;
#pragma omp parallel for if (rows * cols > kParallelGrain) schedule(static)
  for (int64_t gi = 0; gi < groups; gi++) {
    const int64_t r0 = gi * kNormGroup, n = std::min(kNormGroup, rows - r0);
    const float *xs[kNormGroup], *dys[kNormGroup];
    float* dxs[kNormGroup];
    rowPointers(x, r0, n, cols, xs);
    rowPointers(dy, r0, n, cols, dys);
    rowPointers(dx, r0, n, cols, dxs);
    normRowsBackward(n, xs, dys, g, mean + r0, rstd + r0, dxs, cols, rms);
  }
  columnSums(rows, cols, dg, kParallelGrain,
             [&](int64_t r, int64_t c) { return dy[r * cols + c] * (x[r * cols + c] - mean[r]) * rstd[r]; });
  if (db) columnSums(rows, cols, db, kParallelGrain, [&](int64_t r, int64_t c) { return dy[r * cols + c]; });
  return env.Undefined();
}

// crossEntropy(logits, labels, probs, rows, cols, ignoreIndex) → [sumLoss, validCount];
// probs receives softmax(logits) for the backward pass.
static Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 6, "crossEntropy")) return env.Undefined();
  const float* x = f32(info[0]);
  const int32_t* lab = i32(info[1]);
  float* p = f32(info[2]);
  const int64_t rows = num(info, 3), cols = num(info, 4), ignore = num(info, 5);
  double loss = 0;
  int64_t count = 0;
#pragma omp parallel for reduction(+ : loss, count) if (rows * cols > kParallelGrain) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* pr = p + r * cols;
    float mx = -INFINITY;
    for (int64_t c = 0; c < cols; c++) mx = std::max(mx, xr[c]);
    for (int64_t c = 0; c < cols; c++) pr[c] = vexp(xr[c] - mx);
    float sum = 0.f;
    for (int64_t c = 0; c < cols; c++) sum += pr[c];
    const float inv = 1.f / sum;
    for (int64_t c = 0; c < cols; c++) pr[c] *= inv;
    const int32_t y = lab[r];
    if (y == ignore || y < 0 || y >= cols) continue;
    loss += -(xr[y] - mx - std::log(sum));
    count += 1;
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, loss);
  out.Set(1u, static_cast<double>(count));
  return out;
}

// crossEntropyGrad(probs, labels, dlogits, rows, cols, ignoreIndex, scale):
// dlogits = (probs − onehot(label))·scale on valid rows, 0 on ignored ones.
static Napi::Value CrossEntropyGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 7, "crossEntropyGrad")) return env.Undefined();
  const float* p = f32(info[0]);
  const int32_t* lab = i32(info[1]);
  float* d = f32(info[2]);
  const int64_t rows = num(info, 3), cols = num(info, 4), ignore = num(info, 5);
  const float scale = static_cast<float>(dbl(info, 6));
#pragma omp parallel for if (rows * cols > kParallelGrain) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const int32_t y = lab[r];
    const bool valid = !(y == ignore || y < 0 || y >= cols);
    for (int64_t c = 0; c < cols; c++)
      d[r * cols + c] = valid ? (p[r * cols + c] - (c == y ? 1.f : 0.f)) * scale : 0.f;
  }
  return env.Undefined();
}

// maskedSoftmax(x, mask|null, out, shape[4], maskStrides[4], scale):
// out = softmax(x·scale + mask) over the last axis of a [B, H, Tq, Tk] score tensor, with the
// additive mask read through broadcast strides (0 on broadcast dims; its last stride is 0 or 1).
// Rows go kRowGroup at a time (softmax_rows.h, the arithmetic of the fused attention kernel).
static Napi::Value MaskedSoftmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 6, "maskedSoftmax")) return env.Undefined();
  const float* x = f32(info[0]);
  const float* mask = info[1].IsTypedArray() ? f32(info[1]) : nullptr;
  float* o = f32(info[2]);
  const int32_t* sh = i32(info[3]);
  const int32_t* ms = i32(info[4]);
  const float scale = static_cast<float>(dbl(info, 5));
  const int64_t d0 = sh[0], d1 = sh[1], d2 = sh[2], cols = sh[3];
  const int64_t rows = d0 * d1 * d2, groups = (rows + kRowGroup - 1) / kRowGroup;
#pragma omp parallel for if (rows * cols > kParallelGrain) schedule(static)
  for (int64_t gi = 0; gi < groups; gi++) {
    const float* xs[kRowGroup];
    float* os[kRowGroup];
    const float* masks[kRowGroup];
    const int64_t r0 = gi * kRowGroup, n = std::min(kRowGroup, rows - r0);
    for (int64_t j = 0; j < n; j++) {
      const int64_t r = r0 + j, i2 = r % d2, i1 = (r / d2) % d1, i0 = r / (d1 * d2);
      xs[j] = x + r * cols;
      os[j] = o + r * cols;
      masks[j] = mask ? mask + i0 * ms[0] + i1 * ms[1] + i2 * ms[2] : nullptr;
    }
    softmaxRows(n, xs, os, masks, ms[3], cols, scale);
  }
  return env.Undefined();
}

// softmaxGrad(y, dy, dx, rows, cols, scale): dx = scale · y ⊙ (dy − Σ dy⊙y) per row.
static Napi::Value SoftmaxGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 6, "softmaxGrad")) return env.Undefined();
  const float* y = f32(info[0]);
  const float* dy = f32(info[1]);
  float* dx = f32(info[2]);
  const int64_t rows = num(info, 3), cols = num(info, 4);
  const float scale = static_cast<float>(dbl(info, 5));
  const int64_t groups = (rows + kRowGroup - 1) / kRowGroup;
#pragma omp parallel for if (rows * cols > kParallelGrain) schedule(static)
  for (int64_t gi = 0; gi < groups; gi++) {
    const float* ys[kRowGroup];
    const float* dys[kRowGroup];
    float* dxs[kRowGroup];
    const int64_t r0 = gi * kRowGroup, n = std::min(kRowGroup, rows - r0);
    rowPointers(y, r0, n, cols, ys);
    rowPointers(dy, r0, n, cols, dys);
    rowPointers(dx, r0, n, cols, dxs);
    softmaxGradRows(n, ys, dys, dxs, cols, scale);
  }
  return env.Undefined();
}

// torch.optim.AdamW's single-tensor update (decoupled decay, bias-corrected moments) over n
// elements; the constants are derived once per step from the hyper-parameters.
struct AdamConsts {
  float decay, stepSize, bc2Sqrt, b1, b2, eps;
  AdamConsts(double lr, double b1d, double b2d, double epsd, double wd, double t)
      : decay(static_cast<float>(1.0 - lr * wd)),
        stepSize(static_cast<float>(lr / (1.0 - std::pow(b1d, t)))),
        bc2Sqrt(static_cast<float>(std::sqrt(1.0 - std::pow(b2d, t)))),
        b1(static_cast<float>(b1d)),
        b2(static_cast<float>(b2d)),
        eps(static_cast<float>(epsd)) {}
};

static void adamwPass(const float* p, const float* g, const float* m, const float* v, float* po, float* mo,
                      float* vo, int64_t n, const AdamConsts& c) {
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = m[i] * c.b1 + gi * (1.f - c.b1);
    const float vi = v[i] * c.b2 + gi * gi * (1.f - c.b2);
    mo[i] = mi;
    vo[i] = vi;
    po[i] = p[i] * c.decay - c.stepSize * mi / (std::sqrt(vi) / c.bc2Sqrt + c.eps);
  }
}

// adamw(p, g, m, v, pOut, mOut, vOut, lr, beta1, beta2, eps, weightDecay, step): one parameter.
static Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 13, "adamw")) return env.Undefined();
  Raw pr = raw(info[0]);
  const AdamConsts c(dbl(info, 7), dbl(info, 8), dbl(info, 9), dbl(info, 10), dbl(info, 11), dbl(info, 12));
  adamwPass(static_cast<float*>(pr.data), f32(info[1]), f32(info[2]), f32(info[3]), f32(info[4]), f32(info[5]),
            f32(info[6]), static_cast<int64_t>(pr.length), c);
  return env.Undefined();
}

// adamwAll([p, g, m, v, pOut, mOut, vOut] arrays of typed arrays, lr, beta1, beta2, eps, weightDecay,
// step): the same update for every parameter of an optimizer in one call (same bits as adamw).
static Napi::Value AdamWAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 13, "adamwAll")) return env.Undefined();
  Napi::Array arr[7];
  for (int j = 0; j < 7; j++) arr[j] = info[j].As<Napi::Array>();
  const AdamConsts c(dbl(info, 7), dbl(info, 8), dbl(info, 9), dbl(info, 10), dbl(info, 11), dbl(info, 12));
  for (uint32_t i = 0; i < arr[0].Length(); i++) {
    Raw pr = raw(arr[0].Get(i));
    adamwPass(static_cast<float*>(pr.data), f32(arr[1].Get(i)), f32(arr[2].Get(i)), f32(arr[3].Get(i)),
              f32(arr[4].Get(i)), f32(arr[5].Get(i)), f32(arr[6].Get(i)), static_cast<int64_t>(pr.length), c);
  }
  return env.Undefined();
}

void registerFused(Napi::Env env, Napi::Object exports) {
  exports.Set("adamw", Napi::Function::New(env, AdamW));
  exports.Set("adamwAll", Napi::Function::New(env, AdamWAll));
  exports.Set("maskedSoftmax", Napi::Function::New(env, MaskedSoftmax));
  exports.Set("softmaxGrad", Napi::Function::New(env, SoftmaxGrad));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("normForward", Napi::Function::New(env, NormForward));
  exports.Set("normBackward", Napi::Function::New(env, NormBackward));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy));
  exports.Set("crossEntropyGrad", Napi::Function::New(env, CrossEntropyGrad));
}

}  // namespace lowrank
