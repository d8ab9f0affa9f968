// Native single-token decoding for Llama-family decoders (issue 17, item 1): one call per token runs
// every layer on a KV cache held here — RMSNorm, the q/k/v/o and gate/up/down projections (OpenBLAS
// sgemv), RoPE in the rotate_half convention, grouped-query attention over the cache, the gated MLP —
// then the final norm and the LM head. Unmerged adapters are applied on each projection as low-rank
// terms `y += s·B(A x)` (LoRA; AdaLoRA with Λ folded into A by the caller) and an optional per-row
// factor `y ← f ⊙ y` before the bias (DoRA's m / ‖W + sBA‖, computed once by the caller).
//
// The tfjs forward (src/models/llama.ts, rope_decoder.ts) is the reference: src/models/native_decode.ts
// builds a Decoder from a model's weights and tests compare logits and greedy tokens.
#include "common.h"
#include <cblas.h>
#include <cmath>
#include <vector>
#include <string>
#include <algorithm>

namespace lowrank {

namespace {

// One adapter term of a projection: y += scale · B (A x), A [r, in], B [out, r].
struct LowRank {
  const float* a;
  const float* b;
  int64_t r;
  float scale;
};

// One projection y = f ⊙ (W x + Σ terms) + bias, W [out, in] row-major.
struct Proj {
  const float* w = nullptr;
  const float* bias = nullptr;
  const float* rowScale = nullptr;
  int64_t out = 0, in = 0;
  std::vector<LowRank> terms;
};

struct Layer {
  const float* ln1;
  const float* ln2;
  Proj q, k, v, o, gate, up, down;
};

enum Act { kSilu = 0, kGeluTanh = 1 };

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float geluTanh(float x) {
  const float c = 0.7978845608028654f;  // √(2/π)
  return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
}

// out = x · rsqrt(mean(x²) + eps) · (w or 1 + w); same order as ops/rmsNorm (sum of squares in f32).
void rmsNorm(const float* x, const float* w, float* out, int64_t n, float eps, bool offset) {
  float ss = 0.0f;
  for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
  const float r = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * r * (offset ? 1.0f + w[i] : w[i]);
}

// y = f ⊙ (W x + Σ s·B(A x)) + bias; `tmp` holds at least max r floats.
void project(const Proj& p, const float* x, float* y, float* tmp) {
  cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(p.out), static_cast<int>(p.in), 1.0f, p.w,
              static_cast<int>(p.in), x, 1, 0.0f, y, 1);
  for (const LowRank& t : p.terms) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(t.r), static_cast<int>(p.in), 1.0f, t.a,
                static_cast<int>(p.in), x, 1, 0.0f, tmp, 1);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(p.out), static_cast<int>(t.r), t.scale, t.b,
                static_cast<int>(t.r), tmp, 1, 1.0f, y, 1);
  }
  if (p.rowScale)
    for (int64_t i = 0; i < p.out; i++) y[i] *= p.rowScale[i];
  if (p.bias)
    for (int64_t i = 0; i < p.out; i++) y[i] += p.bias[i];
}

}  // namespace

// new Decoder(dims: Float64Array, weights: Array, layers: Array) — see native_decode.ts for layouts.
// dims = [hidden, intermediate, nLayers, nHead, nKvHead, headDim, vocab, maxSeq, eps, ropeTheta, act,
//         normOffset, embedScale, scoreScale]
class Decoder : public Napi::ObjectWrap<Decoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Decoder",
                       {InstanceMethod("step", &Decoder::Step), InstanceMethod("reset", &Decoder::Reset),
                        InstanceAccessor("position", &Decoder::Position, nullptr)});
  }

  explicit Decoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Decoder>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsArray() || !info[2].IsArray()) {
      Napi::TypeError::New(env, "internal: Decoder(dims, weights, layers)").ThrowAsJavaScriptException();
      return;
    }
    keep_ = Napi::Persistent(Napi::Array::New(env));
    const double* d = static_cast<const double*>(raw(info[0]).data);
    hidden_ = int64_t(d[0]);
    inter_ = int64_t(d[1]);
    nLayers_ = int64_t(d[2]);
    nHead_ = int64_t(d[3]);
    nKv_ = int64_t(d[4]);
    headDim_ = int64_t(d[5]);
    vocab_ = int64_t(d[6]);
    maxSeq_ = int64_t(d[7]);
    eps_ = float(d[8]);
    theta_ = d[9];
    act_ = int(d[10]);
    normOffset_ = d[11] != 0;
    embedScale_ = float(d[12]);
    scoreScale_ = float(d[13]);
    Napi::Array w = info[1].As<Napi::Array>();  // [embed, finalNorm, lmHead]
    embed_ = hold(w.Get(0u));
    finalNorm_ = hold(w.Get(1u));
    lmHead_ = hold(w.Get(2u));
    Napi::Array ls = info[2].As<Napi::Array>();
    int64_t maxR = 1;
    for (uint32_t i = 0; i < ls.Length(); i++) {
      Napi::Array l = ls.Get(i).As<Napi::Array>();  // [ln1, ln2, q, k, v, o, gate, up, down]
      Layer layer;
      layer.ln1 = hold(l.Get(0u));
      layer.ln2 = hold(l.Get(1u));
      Proj* ps[7] = {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down};
      for (uint32_t j = 0; j < 7; j++) {
        readProj(l.Get(j + 2).As<Napi::Array>(), *ps[j]);
        for (const LowRank& t : ps[j]->terms) maxR = std::max(maxR, t.r);
      }
      layers_.push_back(std::move(layer));
    }
    const int64_t kvDim = nKv_ * headDim_;
    kCache_.assign(size_t(nLayers_ * maxSeq_ * kvDim), 0.0f);
    vCache_.assign(size_t(nLayers_ * maxSeq_ * kvDim), 0.0f);
    x_.resize(size_t(hidden_));
    xb_.resize(size_t(std::max(hidden_, nHead_ * headDim_)));
    xb2_.resize(size_t(hidden_));
    q_.resize(size_t(nHead_ * headDim_));
    att_.resize(size_t(nHead_ * headDim_));
    hb_.resize(size_t(inter_));
    hb2_.resize(size_t(inter_));
    scores_.resize(size_t(maxSeq_));
    tmp_.resize(size_t(maxR));
    cos_.resize(size_t(headDim_ / 2));
    sin_.resize(size_t(headDim_ / 2));
  }

 private:
  const float* hold(Napi::Value v) {
    if (v.IsNull() || v.IsUndefined()) return nullptr;
    keep_.Value().Set(keep_.Value().Length(), v);  // keeps the array (and its buffer) alive
    return f32(v);
  }

  // [w, bias|null, rowScale|null, out, in, terms: [[a, b, r, scale], …]]
  void readProj(Napi::Array a, Proj& p) {
    p.w = hold(a.Get(0u));
    p.bias = hold(a.Get(1u));
    p.rowScale = hold(a.Get(2u));
    p.out = int64_t(a.Get(3u).As<Napi::Number>().DoubleValue());
    p.in = int64_t(a.Get(4u).As<Napi::Number>().DoubleValue());
    Napi::Array terms = a.Get(5u).As<Napi::Array>();
    for (uint32_t i = 0; i < terms.Length(); i++) {
      Napi::Array t = terms.Get(i).As<Napi::Array>();
      p.terms.push_back(LowRank{hold(t.Get(0u)), hold(t.Get(1u)),
                                int64_t(t.Get(2u).As<Napi::Number>().DoubleValue()),
                                float(t.Get(3u).As<Napi::Number>().DoubleValue())});
    }
  }

  // RoPE (rotate_half): dimension i pairs with i + d/2; angles in float64 rounded once, as rope.ts.
  void rope(float* v, int64_t heads) {
    const int64_t half = headDim_ / 2;
    for (int64_t h = 0; h < heads; h++) {
      float* x = v + h * headDim_;
      for (int64_t i = 0; i < half; i++) {
        const float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * cos_[i] - x2 * sin_[i];
        x[i + half] = x2 * cos_[i] + x1 * sin_[i];
      }
    }
  }

  void layerStep(const Layer& L, int64_t li, int64_t pos) {
    const int64_t kvDim = nKv_ * headDim_;
    float* kRow = kCache_.data() + (li * maxSeq_ + pos) * kvDim;
    float* vRow = vCache_.data() + (li * maxSeq_ + pos) * kvDim;
    rmsNorm(x_.data(), L.ln1, xb_.data(), hidden_, eps_, normOffset_);
    project(L.q, xb_.data(), q_.data(), tmp_.data());
    project(L.k, xb_.data(), kRow, tmp_.data());
    project(L.v, xb_.data(), vRow, tmp_.data());
    rope(q_.data(), nHead_);
    rope(kRow, nKv_);
    const int64_t group = nHead_ / nKv_;
    const float* kBase = kCache_.data() + li * maxSeq_ * kvDim;
    const float* vBase = vCache_.data() + li * maxSeq_ * kvDim;
    for (int64_t h = 0; h < nHead_; h++) {
      const float* q = q_.data() + h * headDim_;
      const int64_t kvOff = (h / group) * headDim_;
      float mx = -INFINITY;
      for (int64_t t = 0; t <= pos; t++) {
        const float* k = kBase + t * kvDim + kvOff;
        float s = 0.0f;
        for (int64_t i = 0; i < headDim_; i++) s += q[i] * k[i];
        s *= scoreScale_;
        scores_[size_t(t)] = s;
        if (s > mx) mx = s;
      }
      float sum = 0.0f;
      for (int64_t t = 0; t <= pos; t++) sum += (scores_[size_t(t)] = std::exp(scores_[size_t(t)] - mx));
      const float inv = 1.0f / sum;
      float* o = att_.data() + h * headDim_;
      for (int64_t i = 0; i < headDim_; i++) o[i] = 0.0f;
      for (int64_t t = 0; t <= pos; t++) {
        const float p = scores_[size_t(t)] * inv;
        const float* v = vBase + t * kvDim + kvOff;
        for (int64_t i = 0; i < headDim_; i++) o[i] += p * v[i];
      }
    }
    project(L.o, att_.data(), xb2_.data(), tmp_.data());
    for (int64_t i = 0; i < hidden_; i++) x_[size_t(i)] += xb2_[size_t(i)];
    rmsNorm(x_.data(), L.ln2, xb_.data(), hidden_, eps_, normOffset_);
    project(L.gate, xb_.data(), hb_.data(), tmp_.data());
    project(L.up, xb_.data(), hb2_.data(), tmp_.data());
    if (act_ == kSilu)
      for (int64_t i = 0; i < inter_; i++) hb_[size_t(i)] = silu(hb_[size_t(i)]) * hb2_[size_t(i)];
    else
      for (int64_t i = 0; i < inter_; i++) hb_[size_t(i)] = geluTanh(hb_[size_t(i)]) * hb2_[size_t(i)];
    project(L.down, hb_.data(), xb2_.data(), tmp_.data());
    for (int64_t i = 0; i < hidden_; i++) x_[size_t(i)] += xb2_[size_t(i)];
  }

  // step(token, logits f32[vocab] | null): runs the token at the next position; fills logits when given.
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (badArgs(info, 2, "Decoder.step")) return env.Undefined();
    const int64_t token = num(info, 0);
    if (token < 0 || token >= vocab_ || pos_ >= maxSeq_) {
      Napi::RangeError::New(env, "internal: Decoder.step token " + std::to_string(token) + " or position " +
                                     std::to_string(pos_) + " out of range")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    const float* e = embed_ + token * hidden_;
    for (int64_t i = 0; i < hidden_; i++) x_[size_t(i)] = e[i] * embedScale_;
    const int64_t half = headDim_ / 2;
    for (int64_t i = 0; i < half; i++) {
      const double invFreq = 1.0 / std::pow(theta_, double(2 * i) / double(headDim_));
      const double angle = double(pos_) * invFreq;
      cos_[size_t(i)] = float(std::cos(angle));
      sin_[size_t(i)] = float(std::sin(angle));
    }
    for (int64_t li = 0; li < nLayers_; li++) layerStep(layers_[size_t(li)], li, pos_);
    pos_++;
    if (!info[1].IsNull() && !info[1].IsUndefined()) {
      const Raw out = raw(info[1]);
      if (int64_t(out.length) < vocab_) {
        Napi::RangeError::New(env, "internal: Decoder.step logits too short").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      rmsNorm(x_.data(), finalNorm_, xb_.data(), hidden_, eps_, normOffset_);
      cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(vocab_), static_cast<int>(hidden_), 1.0f,
                  lmHead_, static_cast<int>(hidden_), xb_.data(), 1, 0.0f, static_cast<float*>(out.data), 1);
    }
    return env.Undefined();
  }

  Napi::Value Reset(const Napi::CallbackInfo& info) {
    pos_ = 0;
    return info.Env().Undefined();
  }

  Napi::Value Position(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(pos_)); }

  Napi::Reference<Napi::Array> keep_;
  int64_t hidden_ = 0, inter_ = 0, nLayers_ = 0, nHead_ = 0, nKv_ = 0, headDim_ = 0, vocab_ = 0, maxSeq_ = 0;
  float eps_ = 0, embedScale_ = 1, scoreScale_ = 1;
  double theta_ = 10000;
  int act_ = kSilu;
  bool normOffset_ = false;
  const float* embed_ = nullptr;
  const float* finalNorm_ = nullptr;
  const float* lmHead_ = nullptr;
  std::vector<Layer> layers_;
  std::vector<float> kCache_, vCache_, x_, xb_, xb2_, q_, att_, hb_, hb2_, scores_, tmp_, cos_, sin_;
  int64_t pos_ = 0;
};

void registerDecode(Napi::Env env, Napi::Object exports) { exports.Set("Decoder", Decoder::Define(env)); }

}  // namespace lowrank
