// Native token decoding for Llama-family decoders (issue 17, item 1): one call per token (or one per
// greedy run, or per 64-token prompt chunk) runs every layer on a KV cache held here — RMSNorm, the
// q/k/v/o and gate/up/down projections (OpenBLAS sgemv/sgemm; Phi-3's fused qkv / gate_up split after
// the product), RoPE in the rotate_half convention, grouped-query attention over the cache (sliding
// windows per layer, Gemma 2's score soft-capping), the gated MLP, Gemma 2's post norms — then the
// final norm, the LM head and Gemma 2's final soft-capping. Unmerged adapters are applied on each
// projection as low-rank terms `y += s·B(A x)` (LoRA; AdaLoRA with Λ folded into A by the caller) and
// an optional per-row factor `y ← f ⊙ y` before the bias (DoRA's m / ‖W + sBA‖, computed by the caller).
//
// The tfjs forward (src/models/llama.ts, rope_decoder.ts, gemma.ts, phi3.ts) is the reference:
// src/models/native_decode.ts builds a Decoder from a model's weights and tests compare logits and
// greedy tokens.
#include "common.h"
#include "nibble.h"
#include <cblas.h>
#include <cmath>
#include <vector>
#include <string>
#include <algorithm>
#include <memory>

namespace lowrank {

namespace {

// One adapter term of a projection: y += scale · B (A x), A [r, in], B [out, r].
struct LowRank {
  const float* a;
  const float* b;
  int64_t r;
  float scale;
};

// One adapter configuration of a projection (a "slot"): terms and the optional DoRA row factor.
struct Slot {
  const float* rowScale = nullptr;
  std::vector<LowRank> terms;
};

// A 4-bit weight (QLoRA, NF4/FP4): packed codes (high nibble first), the 16-entry code book and
// one absmax per block of `blocksize` elements of the flattened [out, in] weight (double
// quantisation already decoded by the caller, with the same f32 operations as dequant.cc).
struct Quant4 {
  const uint8_t* packed = nullptr;
  const float* code = nullptr;
  const float* absmax = nullptr;
  int64_t blocksize = 0;
};

// One projection, per token i: y_i = f_s ⊙ (W x_i + Σ_{terms of s} s·B(A x_i)) + bias with s = slot[i]
// (a slot outside the list, e.g. −1, is the base layer alone). W [out, in] row-major.
struct Proj {
  const float* w = nullptr;  // f32 weight, or null when `q4` holds it
  Quant4 q4;
  const float* bias = nullptr;
  int64_t out = 0, in = 0;
  std::vector<Slot> slots;
};

// A block: x += postAttn(o(attn(ln1 x))); x += postFfn(down(act(gate h) · up h)), h = ln2 x. Fused
// layouts (Phi-3): `q` holds [q; k; v] rows and k, v are empty (out 0); `gate` holds [gate; up] and up
// is empty. postAttn / postFfn (Gemma 2's post norms) are null elsewhere; window 0 = full attention.
struct Layer {
  const float* ln1;
  const float* ln2;
  const float* postAttn = nullptr;
  const float* postFfn = nullptr;
  int64_t window = 0;
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

// Y [n, out] = X [n, in] · Wᵀ with W 4-bit: each block is decoded once into a 16-entry table
// (code[k] · absmax, the same f32 products as dequant.cc) and a row buffer, then dotted with every
// token's input, so the weight is read at 4 bits per element and never held in f32.
void gemv4(const Quant4& q, int64_t out, int64_t in, const float* X, float* Y, int64_t n, float* row) {
  for (int64_t j = 0; j < out; j++) {
    const int64_t base = j * in;
    for (int64_t c = 0; c < in;) {
      const int64_t b = (base + c) / q.blocksize;
      const int64_t end = std::min(in, (b + 1) * q.blocksize - base);
      float lut[16];
      const float a = q.absmax[b];
      for (int k = 0; k < 16; k++) lut[k] = q.code[k] * a;
      int64_t e = c;
      if ((base + e) & 1) {  // a block starting on a low nibble (odd row width): one element first
        row[e] = lut[q.packed[(base + e) >> 1] & 0x0f];
        e++;
      }
      const uint8_t* bytes = q.packed + ((base + e) >> 1);
      const int64_t pairs = (end - e) / 2;  // whole bytes: high nibble, then low nibble (nibble.h)
      decodeNibbles(bytes, pairs, lut, row + e);
      e += 2 * pairs;
      if (e < end) row[e] = lut[bytes[pairs] >> 4];
      c = end;
    }
    for (int64_t i = 0; i < n; i++) {
      const float* x = X + i * in;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)  // lanes of partial sums (strict FP would keep one chain)
      for (int64_t e = 0; e < in; e++) acc += row[e] * x[e];
      Y[i * out + j] = acc;
    }
  }
}

// Y [n, out] = rows of X [n, in] through the projection, each with its own adapter slot; `tmp` holds
// at least max r floats. One token: sgemv; several: one sgemm for the shared base weight.
void project(const Proj& p, const float* X, float* Y, int64_t n, const int32_t* slots, float* tmp, float* row) {
  const int out = static_cast<int>(p.out), in = static_cast<int>(p.in);
  if (!p.w)
    gemv4(p.q4, p.out, p.in, X, Y, n, row);
  else if (n == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, p.w, in, X, 1, 0.0f, Y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), out, in, 1.0f, X, in, p.w, in, 0.0f,
                Y, out);
  for (int64_t i = 0; i < n; i++) {
    const int32_t s = slots[i];
    float* y = Y + i * p.out;
    if (s >= 0 && s < static_cast<int32_t>(p.slots.size())) {
      const Slot& slot = p.slots[size_t(s)];
      const float* x = X + i * p.in;
      for (const LowRank& t : slot.terms) {
        const int r = static_cast<int>(t.r);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, r, in, 1.0f, t.a, in, x, 1, 0.0f, tmp, 1);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, r, t.scale, t.b, r, tmp, 1, 1.0f, y, 1);
      }
      if (slot.rowScale)
        for (int64_t j = 0; j < p.out; j++) y[j] *= slot.rowScale[j];
    }
    if (p.bias)
      for (int64_t j = 0; j < p.out; j++) y[j] += p.bias[j];
  }
}

}  // namespace

// new Decoder(dims: Float64Array, weights: [embed, finalNorm, lmHead], layers: Array) — layouts in
// native_decode.ts. dims = [hidden, intermediate, nLayers, nHead, nKvHead, headDim, vocab, maxSeq, eps,
// ropeTheta, act, normOffset, embedScale, scoreScale, rows, attnSoftcap, finalSoftcap] (caps 0 = off). Each of the `rows` sequences has its own
// KV cache and position (ragged batches); a step advances any subset of rows by one token each.
class Decoder : public Napi::ObjectWrap<Decoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Decoder",
                       {InstanceMethod("step", &Decoder::Step), InstanceMethod("reset", &Decoder::Reset),
                        InstanceMethod("position", &Decoder::Position), InstanceMethod("greedy", &Decoder::Greedy),
                        InstanceMethod("prefill", &Decoder::Prefill),
                        InstanceMethod("copyRow", &Decoder::CopyRow),
                        InstanceMethod("setLayers", &Decoder::SetLayers)});
  }

  explicit Decoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Decoder>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsArray() || !info[2].IsArray()) {
      Napi::TypeError::New(env, "internal: Decoder(dims, weights, layers)").ThrowAsJavaScriptException();
      return;
    }
    keep_ = Napi::Persistent(Napi::Array::New(env));
    keepLayers_ = Napi::Persistent(Napi::Array::New(env));
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
    rows_ = int64_t(d[14]);
    attnCap_ = float(d[15]);
    finalCap_ = float(d[16]);
    Napi::Array w = info[1].As<Napi::Array>();
    embed_ = hold(w.Get(0u));
    finalNorm_ = hold(w.Get(1u));
    lmHead_ = hold(w.Get(2u));
    if (!loadLayers(env, info[2].As<Napi::Array>())) return;
    const int64_t kvDim = nKv_ * headDim_, qDim = nHead_ * headDim_, B = cap_ = std::max<int64_t>(rows_, kChunk);
    // Not value-initialised: the pages of rows and positions never used stay unmapped (a server
    // opens rows × context length but most rows hold short sequences).
    kCache_.reset(new float[size_t(rows_ * nLayers_ * maxSeq_ * kvDim)]);
    vCache_.reset(new float[size_t(rows_ * nLayers_ * maxSeq_ * kvDim)]);
    posOf_.resize(size_t(B));
    pos_.assign(size_t(B), 0);
    x_.resize(size_t(B * hidden_));
    xb_.resize(size_t(B * std::max(hidden_, qDim)));
    xb2_.resize(size_t(B * hidden_));
    q_.resize(size_t(B * qDim));
    k_.resize(size_t(B * kvDim));
    v_.resize(size_t(B * kvDim));
    att_.resize(size_t(B * qDim));
    hb_.resize(size_t(B * inter_));
    hb2_.resize(size_t(B * inter_));
    fused_.resize(size_t(B * std::max(qDim + 2 * kvDim, 2 * inter_)));
    scores_.resize(size_t(maxSeq_));
    row_.resize(size_t(std::max(std::max(hidden_, inter_), qDim)));
    cos_.resize(size_t(B * headDim_ / 2));
    for (int64_t j = 0; j < headDim_ / 2; j++)  // rope.ts's inverse frequencies, float64
      invFreq_.push_back(1.0 / std::pow(theta_, double(2 * j) / double(headDim_)));
    sin_.resize(size_t(B * headDim_ / 2));
  }

 private:
  // Keeps the array (and its buffer) alive while this decoder reads it: base weights in keep_,
  // layer arrays (replaced by setLayers) in keepLayers_.
  const float* hold(Napi::Value v) {
    if (v.IsNull() || v.IsUndefined()) return nullptr;
    Napi::Array k = loadingLayers_ ? keepLayers_.Value() : keep_.Value();
    k.Set(k.Length(), v);
    return f32(v);
  }

  // Reads the per-layer arrays [ln1, ln2, q, k|null, v|null, o, gate, up|null, down, postAttn|null,
  // postFfn|null, window] into layers_ (replacing them).
  bool loadLayers(Napi::Env env, Napi::Array ls) {
    if (int64_t(ls.Length()) != nLayers_) {
      Napi::RangeError::New(env, "internal: Decoder layers: wrong layer count").ThrowAsJavaScriptException();
      return false;
    }
    keepLayers_ = Napi::Persistent(Napi::Array::New(env));
    loadingLayers_ = true;
    std::vector<Layer> layers;
    int64_t maxR = 1;
    for (uint32_t i = 0; i < ls.Length(); i++) {
      Napi::Array l = ls.Get(i).As<Napi::Array>();
      Layer layer;
      layer.ln1 = hold(l.Get(0u));
      layer.ln2 = hold(l.Get(1u));
      layer.postAttn = hold(l.Get(9u));
      layer.postFfn = hold(l.Get(10u));
      layer.window = int_(l.Get(11u));
      Proj* ps[7] = {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down};
      for (uint32_t j = 0; j < 7; j++) {
        Napi::Value pj = l.Get(j + 2);
        if (pj.IsNull()) continue;  // fused into the projection before it
        readProj(pj.As<Napi::Array>(), *ps[j]);
        for (const Slot& sl : ps[j]->slots)
          for (const LowRank& t : sl.terms) maxR = std::max(maxR, t.r);
      }
      layers.push_back(std::move(layer));
    }
    loadingLayers_ = false;
    layers_ = std::move(layers);
    tmp_.resize(size_t(maxR));
    return true;
  }

  static int64_t int_(Napi::Value v) { return int64_t(v.As<Napi::Number>().DoubleValue()); }

  // [w|null, bias|null, out, in, slots: [[rowScale|null, terms: [[a, b, r, scale], …]], …],
  //  q4: [packed u8, code f32[16], absmax f32, blocksize] | null]
  void readProj(Napi::Array a, Proj& p) {
    p.w = hold(a.Get(0u));
    if (!p.w) {
      Napi::Array q = a.Get(5u).As<Napi::Array>();
      Napi::Value packed = q.Get(0u);
      Napi::Array k = loadingLayers_ ? keepLayers_.Value() : keep_.Value();
      k.Set(k.Length(), packed);
      p.q4 = Quant4{u8(packed), hold(q.Get(1u)), hold(q.Get(2u)), int_(q.Get(3u))};
    }
    p.bias = hold(a.Get(1u));
    p.out = int_(a.Get(2u));
    p.in = int_(a.Get(3u));
    Napi::Array slots = a.Get(4u).As<Napi::Array>();
    for (uint32_t s = 0; s < slots.Length(); s++) {
      Napi::Array sa = slots.Get(s).As<Napi::Array>();
      Slot slot;
      slot.rowScale = hold(sa.Get(0u));
      Napi::Array terms = sa.Get(1u).As<Napi::Array>();
      for (uint32_t i = 0; i < terms.Length(); i++) {
        Napi::Array t = terms.Get(i).As<Napi::Array>();
        slot.terms.push_back(
            LowRank{hold(t.Get(0u)), hold(t.Get(1u)), int_(t.Get(2u)), float(t.Get(3u).As<Napi::Number>().DoubleValue())});
      }
      p.slots.push_back(std::move(slot));
    }
  }

  // RoPE (rotate_half): dimension i pairs with i + d/2, with token i's own cos/sin row.
  void rope(float* v, int64_t heads, const float* c, const float* s) const {
    const int64_t half = headDim_ / 2;
    for (int64_t h = 0; h < heads; h++) {
      float* x = v + h * headDim_;
      for (int64_t i = 0; i < half; i++) {
        const float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c[i] - x2 * s[i];
        x[i + half] = x2 * c[i] + x1 * s[i];
      }
    }
  }

  float* cacheRow(std::unique_ptr<float[]>& cache, int64_t row, int64_t li) {
    return cache.get() + (row * nLayers_ + li) * maxSeq_ * nKv_ * headDim_;
  }

  // Softmax attention of token i's query heads over its row's cache positions 0 … pos.
  // Keys t0 … pos with t0 = pos − window + 1 under a sliding window (rope_decoder.ts's mask); scores
  // cap·tanh(s/cap) when soft-capped (Gemma 2), as ropeAttention.
  void attend(int64_t i, int64_t row, int64_t li, int64_t pos, int64_t window) {
    const int64_t kvDim = nKv_ * headDim_, group = nHead_ / nKv_;
    const int64_t t0 = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
    const float* kBase = cacheRow(kCache_, row, li);
    const float* vBase = cacheRow(vCache_, row, li);
    for (int64_t h = 0; h < nHead_; h++) {
      const float* q = q_.data() + (i * nHead_ + h) * headDim_;
      const int64_t kvOff = (h / group) * headDim_;
      float mx = -INFINITY;
      for (int64_t t = t0; t <= pos; t++) {
        const float* k = kBase + t * kvDim + kvOff;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < headDim_; j++) s += q[j] * k[j];
        s *= scoreScale_;
        if (attnCap_ > 0) s = std::tanh(s / attnCap_) * attnCap_;
        scores_[size_t(t)] = s;
        if (s > mx) mx = s;
      }
      float sum = 0.0f;
      for (int64_t t = t0; t <= pos; t++) sum += (scores_[size_t(t)] = std::exp(scores_[size_t(t)] - mx));
      const float inv = 1.0f / sum;
      float* o = att_.data() + (i * nHead_ + h) * headDim_;
      for (int64_t j = 0; j < headDim_; j++) o[j] = 0.0f;
      for (int64_t t = t0; t <= pos; t++) {
        const float p = scores_[size_t(t)] * inv;
        const float* v = vBase + t * kvDim + kvOff;
        for (int64_t j = 0; j < headDim_; j++) o[j] += p * v[j];
      }
    }
  }

  void layerStep(const Layer& L, int64_t li, int64_t n, const int32_t* rows, const int32_t* slots) {
    const int64_t kvDim = nKv_ * headDim_, half = headDim_ / 2, H = hidden_;
    float* tmp = tmp_.data();
    float* wbuf = row_.data();
    for (int64_t i = 0; i < n; i++) rmsNorm(&x_[size_t(i * H)], L.ln1, &xb_[size_t(i * H)], H, eps_, normOffset_);
    const int64_t qDim = nHead_ * headDim_;
    if (L.k.out == 0) {  // fused [q; k; v] rows
      const int64_t w = qDim + 2 * kvDim;
      project(L.q, xb_.data(), fused_.data(), n, slots, tmp, wbuf);
      for (int64_t i = 0; i < n; i++) {
        const float* f = &fused_[size_t(i * w)];
        std::copy_n(f, qDim, &q_[size_t(i * qDim)]);
        std::copy_n(f + qDim, kvDim, &k_[size_t(i * kvDim)]);
        std::copy_n(f + qDim + kvDim, kvDim, &v_[size_t(i * kvDim)]);
      }
    } else {
      project(L.q, xb_.data(), q_.data(), n, slots, tmp, wbuf);
      project(L.k, xb_.data(), k_.data(), n, slots, tmp, wbuf);
      project(L.v, xb_.data(), v_.data(), n, slots, tmp, wbuf);
    }
    for (int64_t i = 0; i < n; i++) {
      const int64_t row = rows[i], pos = posOf_[size_t(i)];
      const float* c = &cos_[size_t(i * half)];
      const float* s = &sin_[size_t(i * half)];
      rope(&q_[size_t(i * nHead_ * headDim_)], nHead_, c, s);
      rope(&k_[size_t(i * kvDim)], nKv_, c, s);
      std::copy_n(&k_[size_t(i * kvDim)], kvDim, cacheRow(kCache_, row, li) + pos * kvDim);
      std::copy_n(&v_[size_t(i * kvDim)], kvDim, cacheRow(vCache_, row, li) + pos * kvDim);
      attend(i, row, li, pos, L.window);
    }
    project(L.o, att_.data(), xb2_.data(), n, slots, tmp, wbuf);
    residual(xb2_.data(), L.postAttn, n);
    for (int64_t i = 0; i < n; i++) rmsNorm(&x_[size_t(i * H)], L.ln2, &xb_[size_t(i * H)], H, eps_, normOffset_);
    if (L.up.out == 0) {  // fused [gate; up] rows
      project(L.gate, xb_.data(), fused_.data(), n, slots, tmp, wbuf);
      for (int64_t i = 0; i < n; i++) {
        const float* f = &fused_[size_t(i * 2 * inter_)];
        std::copy_n(f, inter_, &hb_[size_t(i * inter_)]);
        std::copy_n(f + inter_, inter_, &hb2_[size_t(i * inter_)]);
      }
    } else {
      project(L.gate, xb_.data(), hb_.data(), n, slots, tmp, wbuf);
      project(L.up, xb_.data(), hb2_.data(), n, slots, tmp, wbuf);
    }
    const int64_t m = n * inter_;
    if (act_ == kSilu)
      for (int64_t i = 0; i < m; i++) hb_[size_t(i)] = silu(hb_[size_t(i)]) * hb2_[size_t(i)];
    else
      for (int64_t i = 0; i < m; i++) hb_[size_t(i)] = geluTanh(hb_[size_t(i)]) * hb2_[size_t(i)];
    project(L.down, hb_.data(), xb2_.data(), n, slots, tmp, wbuf);
    residual(xb2_.data(), L.postFfn, n);
  }

  // x += norm(y) per token (Gemma 2's post norms), or x += y without one.
  void residual(float* y, const float* norm, int64_t n) {
    const int64_t H = hidden_;
    if (norm)
      for (int64_t i = 0; i < n; i++) {
        float* r = y + i * H;
        rmsNorm(r, norm, r, H, eps_, normOffset_);  // in place: the sum of squares is read first
      }
    for (int64_t i = 0; i < n * H; i++) x_[size_t(i)] += y[i];
  }

  // logits ← cap·tanh(logits/cap) (Gemma 2's final soft-capping), as decoder_heads.ts.
  void capLogits(float* y, int64_t m) const {
    if (finalCap_ > 0)
      for (int64_t j = 0; j < m; j++) y[j] = std::tanh(y[j] / finalCap_) * finalCap_;
  }

  Napi::Value fail(Napi::Env env, const std::string& what) {
    Napi::RangeError::New(env, "internal: Decoder " + what).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // Runs tokens[i] through row rows[i] (distinct, checked by the caller) with slot slots[i]; writes
  // logits [n, vocab] when `y` is not null.
  // A row may appear several times (a prompt chunk): its tokens take consecutive positions in order,
  // each attending to the ones before it (written to the cache first, as the loop runs in order).
  void forward(int64_t n, const int32_t* tokens, const int32_t* rows, const int32_t* slots, float* y) {
    const int64_t half = headDim_ / 2;
    for (int64_t i = 0; i < n; i++) posOf_[size_t(i)] = pos_[size_t(rows[i])]++;
    for (int64_t i = 0; i < n; i++) {
      const float* e = embed_ + int64_t(tokens[i]) * hidden_;
      for (int64_t j = 0; j < hidden_; j++) x_[size_t(i * hidden_ + j)] = e[j] * embedScale_;
      const double pos = double(posOf_[size_t(i)]);
      for (int64_t j = 0; j < half; j++) {  // angles in float64 rounded once, as rope.ts
        const double angle = pos * invFreq_[size_t(j)];
        cos_[size_t(i * half + j)] = float(std::cos(angle));
        sin_[size_t(i * half + j)] = float(std::sin(angle));
      }
    }
    for (int64_t li = 0; li < nLayers_; li++) layerStep(layers_[size_t(li)], li, n, rows, slots);
    if (!y) return;
    for (int64_t i = 0; i < n; i++)
      rmsNorm(&x_[size_t(i * hidden_)], finalNorm_, &xb_[size_t(i * hidden_)], hidden_, eps_, normOffset_);
    if (n == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, int(vocab_), int(hidden_), 1.0f, lmHead_, int(hidden_), xb_.data(), 1,
                  0.0f, y, 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(vocab_), int(hidden_), 1.0f, xb_.data(),
                  int(hidden_), lmHead_, int(hidden_), 0.0f, y, int(vocab_));
    capLogits(y, n * vocab_);
  }

  // step(tokens i32[n], rows i32[n], slots i32[n], logits f32[n·vocab] | null): token i enters row
  // rows[i] (distinct rows) at that row's next position with adapter slot slots[i].
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (badArgs(info, 4, "Decoder.step")) return env.Undefined();
    const Raw tk = raw(info[0]), rw = raw(info[1]), sl = raw(info[2]);
    const int64_t n = int64_t(tk.length);
    if (n < 1 || n > rows_ || int64_t(rw.length) != n || int64_t(sl.length) != n) return fail(env, "batch size");
    const int32_t* tokens = static_cast<const int32_t*>(tk.data);
    const int32_t* rows = static_cast<const int32_t*>(rw.data);
    const int32_t* slots = static_cast<const int32_t*>(sl.data);
    std::vector<bool> seen(size_t(rows_), false);
    for (int64_t i = 0; i < n; i++) {
      if (tokens[i] < 0 || tokens[i] >= vocab_) return fail(env, "token out of range");
      if (rows[i] < 0 || rows[i] >= rows_ || seen[size_t(rows[i])]) return fail(env, "rows must be distinct and in range");
      seen[size_t(rows[i])] = true;
      if (pos_[size_t(rows[i])] >= maxSeq_) return fail(env, "row is full (maxSeq)");
    }
    float* y = nullptr;
    if (!info[3].IsNull() && !info[3].IsUndefined()) {
      const Raw out = raw(info[3]);
      if (int64_t(out.length) < n * vocab_) return fail(env, "logits too short");
      y = static_cast<float*>(out.data);
    }
    forward(n, tokens, rows, slots, y);
    return env.Undefined();
  }

  // prefill(tokens i32[m], row, slot, logits f32[vocab]): a prompt into one row, kChunk tokens per
  // pass (GEMMs over the chunk instead of one GEMV per token); logits of the last token only.
  Napi::Value Prefill(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (badArgs(info, 4, "Decoder.prefill")) return env.Undefined();
    const Raw tk = raw(info[0]), out = raw(info[3]);
    const int32_t row = int32_t(num(info, 1)), slot = int32_t(num(info, 2));
    const int64_t m = int64_t(tk.length);
    const int32_t* tokens = static_cast<const int32_t*>(tk.data);
    if (row < 0 || row >= rows_) return fail(env, "row out of range");
    if (m < 1 || pos_[size_t(row)] + m > maxSeq_) return fail(env, "row is full (maxSeq)");
    if (int64_t(out.length) < vocab_) return fail(env, "logits too short");
    for (int64_t i = 0; i < m; i++)
      if (tokens[i] < 0 || tokens[i] >= vocab_) return fail(env, "token out of range");
    const std::vector<int32_t> rows(size_t(cap_), row), slots(size_t(cap_), slot);
    for (int64_t c = 0; c < m; c += cap_) {
      const int64_t n = std::min(cap_, m - c);
      forward(n, tokens + c, rows.data(), slots.data(), nullptr);
      if (c + n == m) {  // the last token's hidden state → logits
        float* h = &x_[size_t((n - 1) * hidden_)];
        rmsNorm(h, finalNorm_, xb_.data(), hidden_, eps_, normOffset_);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, int(vocab_), int(hidden_), 1.0f, lmHead_, int(hidden_), xb_.data(), 1,
                    0.0f, static_cast<float*>(out.data), 1);
        capLogits(static_cast<float*>(out.data), vocab_);
      }
    }
    return env.Undefined();
  }

  // greedy(first i32, row, slot, n, eos i32[], out i32[n]) → count: feeds `first`, then each argmax
  // (the first maximum on ties, as generate.ts's argmax) back in, writing up to n new ids to `out`
  // and stopping after an id in `eos` — the whole greedy loop in one call, no logits leave the addon.
  Napi::Value Greedy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (badArgs(info, 6, "Decoder.greedy")) return env.Undefined();
    int32_t token = int32_t(num(info, 0));
    const int32_t row = int32_t(num(info, 1)), slot = int32_t(num(info, 2));
    const int64_t n = num(info, 3);
    const Raw eosRaw = raw(info[4]), outRaw = raw(info[5]);
    const int32_t* eos = static_cast<const int32_t*>(eosRaw.data);
    int32_t* out = static_cast<int32_t*>(outRaw.data);
    if (row < 0 || row >= rows_) return fail(env, "row out of range");
    if (n < 0 || int64_t(outRaw.length) < n) return fail(env, "out too short");
    if (token < 0 || token >= vocab_) return fail(env, "token out of range");
    if (pos_[size_t(row)] + n > maxSeq_) return fail(env, "row is full (maxSeq)");
    logits_.resize(size_t(vocab_));
    float* y = logits_.data();
    int64_t count = 0;
    while (count < n) {
      forward(1, &token, &row, &slot, y);
      int32_t best = 0;
      for (int64_t j = 1; j < vocab_; j++)
        if (y[j] > y[best]) best = int32_t(j);
      out[count++] = best;
      if (std::find(eos, eos + eosRaw.length, best) != eos + eosRaw.length) break;
      token = best;
    }
    return Napi::Number::New(env, double(count));
  }

  // copyRow(src, dst): row dst continues from row src's cache and position (n > 1 choices of a prompt).
  Napi::Value CopyRow(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int64_t src = num(info, 0), dst = num(info, 1);
    if (src < 0 || src >= rows_ || dst < 0 || dst >= rows_) return fail(env, "copyRow: row out of range");
    const int64_t len = pos_[size_t(src)] * nKv_ * headDim_;
    for (int64_t li = 0; li < nLayers_; li++) {
      std::copy_n(cacheRow(kCache_, src, li), len, cacheRow(kCache_, dst, li));
      std::copy_n(cacheRow(vCache_, src, li), len, cacheRow(vCache_, dst, li));
    }
    pos_[size_t(dst)] = pos_[size_t(src)];
    return env.Undefined();
  }

  // setLayers(layers): new per-layer arrays (same weights, other adapter slots); caches are kept.
  Napi::Value SetLayers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray()) return fail(env, "setLayers(layers)");
    loadLayers(env, info[0].As<Napi::Array>());
    return env.Undefined();
  }

  // reset(row): the row starts over at position 0 (its cache is overwritten as it refills).
  Napi::Value Reset(const Napi::CallbackInfo& info) {
    const int64_t row = num(info, 0);
    if (row >= 0 && row < rows_) pos_[size_t(row)] = 0;
    return info.Env().Undefined();
  }

  Napi::Value Position(const Napi::CallbackInfo& info) {
    const int64_t row = num(info, 0);
    return Napi::Number::New(info.Env(), row >= 0 && row < rows_ ? double(pos_[size_t(row)]) : -1.0);
  }

  Napi::Reference<Napi::Array> keep_, keepLayers_;
  bool loadingLayers_ = false;
  int64_t hidden_ = 0, inter_ = 0, nLayers_ = 0, nHead_ = 0, nKv_ = 0, headDim_ = 0, vocab_ = 0, maxSeq_ = 0;
  int64_t rows_ = 1, cap_ = 1;  // rows; tokens per forward (buffers)
  static constexpr int64_t kChunk = 64;  // prompt tokens per prefill pass
  float eps_ = 0, embedScale_ = 1, scoreScale_ = 1, attnCap_ = 0, finalCap_ = 0;
  double theta_ = 10000;
  int act_ = kSilu;
  bool normOffset_ = false;
  const float* embed_ = nullptr;
  const float* finalNorm_ = nullptr;
  const float* lmHead_ = nullptr;
  std::vector<Layer> layers_;
  std::unique_ptr<float[]> kCache_, vCache_;
  std::vector<float> logits_;
  std::vector<float> x_, xb_, xb2_, q_, k_, v_, att_, hb_, hb2_, fused_, scores_, tmp_, row_, cos_, sin_;
  std::vector<int64_t> pos_, posOf_;
  std::vector<double> invFreq_;
};

void registerDecode(Napi::Env env, Napi::Object exports) { exports.Set("Decoder", Decoder::Define(env)); }

}  // namespace lowrank
