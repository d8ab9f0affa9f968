// The arithmetic of native token decoding (decode.cc holds the N-API object around it): the model's
// dims and weights, the KV cache of every row, the scratch buffers, and one forward pass of a batch of
// tokens through every layer — RoPE, attention over the cache, the block, the LM head.
#pragma once
#include "decode_kernels.h"
#include <memory>

namespace lowrank {

struct DecodeCore {
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

}  // namespace lowrank
