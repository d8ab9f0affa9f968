"""Plain-PyTorch greedy decoding of a llama2.c v0 checkpoint (the anchor of bench/decode.ts when no
llama2.c run.c is given). One thread, KV cache, llama2.c's own RoPE convention (adjacent pairs, since the
.bin holds unpermuted q/k). Prints one JSON line: tokens/s over the steps after the first (as run.c
reports it) and the generated ids, so the bench can check the two decoders agree.

usage: /usr/bin/python3 bench/decode_torch.py <model.bin> <steps>
"""
import json
import struct
import sys
import time

import numpy as np
import torch


def load(path):
    with open(path, "rb") as f:
        dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("7i", f.read(28))
        shared = vocab > 0
        vocab = abs(vocab)
        data = np.fromfile(f, dtype=np.float32)
    hs = dim // n_heads
    kv_dim = hs * n_kv
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = torch.from_numpy(data[off : off + n].reshape(shape).copy())
        off += n
        return t

    w = {"emb": take(vocab, dim), "rms_att": take(n_layers, dim)}
    w["wq"] = take(n_layers, dim, dim)
    w["wk"] = take(n_layers, kv_dim, dim)
    w["wv"] = take(n_layers, kv_dim, dim)
    w["wo"] = take(n_layers, dim, dim)
    w["rms_ffn"] = take(n_layers, dim)
    w["w1"] = take(n_layers, hidden, dim)
    w["w2"] = take(n_layers, dim, hidden)
    w["w3"] = take(n_layers, hidden, dim)
    w["rms_final"] = take(dim)
    take(2, seq_len, hs // 2)  # unused freq_cis tables
    w["cls"] = w["emb"] if shared else take(vocab, dim)
    cfg = dict(dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv, vocab=vocab, seq_len=seq_len)
    return cfg, w


def rmsnorm(x, g):
    return x * torch.rsqrt((x * x).mean() + 1e-5) * g


@torch.no_grad()
def main():
    torch.set_num_threads(1)
    path, steps = sys.argv[1], int(sys.argv[2])
    c, w = load(path)
    dim, L, H, KV = c["dim"], c["n_layers"], c["n_heads"], c["n_kv"]
    hs = dim // H
    rep = H // KV
    kc = torch.zeros(L, steps, KV, hs)
    vc = torch.zeros(L, steps, KV, hs)
    inv = 1.0 / (10000.0 ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))

    def rope(v, pos):  # v [heads, hs], pairs (2i, 2i+1)
        ang = pos * inv
        cos, sin = torch.cos(ang).float(), torch.sin(ang).float()
        a, b = v[:, 0::2], v[:, 1::2]
        out = torch.empty_like(v)
        out[:, 0::2] = a * cos - b * sin
        out[:, 1::2] = a * sin + b * cos
        return out

    token, ids, start = 1, [], None
    for pos in range(steps - 1):
        x = w["emb"][token].clone()
        for l in range(L):
            xb = rmsnorm(x, w["rms_att"][l])
            q = rope((w["wq"][l] @ xb).view(H, hs), pos)
            kc[l, pos] = rope((w["wk"][l] @ xb).view(KV, hs), pos)
            vc[l, pos] = (w["wv"][l] @ xb).view(KV, hs)
            k = kc[l, : pos + 1].repeat_interleave(rep, dim=1)  # [T, H, hs]
            v = vc[l, : pos + 1].repeat_interleave(rep, dim=1)
            att = torch.softmax(torch.einsum("hd,thd->ht", q, k) / hs**0.5, dim=-1)
            x = x + w["wo"][l] @ torch.einsum("ht,thd->hd", att, v).reshape(dim)
            xb = rmsnorm(x, w["rms_ffn"][l])
            h = torch.nn.functional.silu(w["w1"][l] @ xb) * (w["w3"][l] @ xb)
            x = x + w["w2"][l] @ h
        logits = w["cls"] @ rmsnorm(x, w["rms_final"])
        token = int(torch.argmax(logits))
        ids.append(token)
        if start is None:
            start = time.perf_counter()  # as run.c: the timer starts after the first step
    elapsed = time.perf_counter() - start
    print(json.dumps({"tokS": (len(ids) - 1) / elapsed, "ids": ids}))


main()
