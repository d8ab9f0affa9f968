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
#include "decode_core.h"
#include <cblas.h>
#include <cmath>
#include <vector>
#include <string>
#include <algorithm>
#include <memory>

namespace lowrank {


// new Decoder(dims: Float64Array, weights: [embed, finalNorm, lmHead], layers: Array) — layouts in
// native_decode.ts. dims = [hidden, intermediate, nLayers, nHead, nKvHead, headDim, vocab, maxSeq, eps,
// ropeTheta, act, normOffset, embedScale, scoreScale, rows, attnSoftcap, finalSoftcap] (caps 0 = off). Each of the `rows` sequences has its own
// KV cache and position (ragged batches); a step advances any subset of rows by one token each.
class Decoder : public Napi::ObjectWrap<Decoder>, DecodeCore {
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

  Napi::Value fail(Napi::Env env, const std::string& what) {
    Napi::RangeError::New(env, "internal: Decoder " + what).ThrowAsJavaScriptException();
    return env.Undefined();
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
};

void registerDecode(Napi::Env env, Napi::Object exports) { exports.Set("Decoder", Decoder::Define(env)); }

}  // namespace lowrank
