"""PyTorch reference for bench/run.ts (Debian python3-torch 1.13 + OpenBLAS), printed as JSON.

  python3 bench/torch_bench.py sgemm '<json [[m, n, k, transA, transB], ...]>' threads reps
  python3 bench/torch_bench.py step <full|lora|adalora|lora-ada> threads steps

The step is the same model as bench/encoder.ts written in plain PyTorch: BERT (6 layers, hidden
384, 6 heads, FFN 1536, seq 128, batch 8, vocab 30522), classification head, cross-entropy,
AdamW; `lora`: r=8 alpha=16 on query,value; `adalora`: SVD adapters init_r=12 on
query,key,value,attention.output.dense,intermediate.dense,output.dense with PEFT's orthogonal
regulariser and sensitivity-based rank allocation each step; `lora-ada`: LoRA r=12 alpha=12 on
AdaLoRA's targets (same targets and initial rank, scale 1).
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

L, H, NH, FFN, T, B, V = 6, 384, 6, 1536, 128, 8, 30522


def bench_sgemm(shapes, reps):
    out = []
    for m, n, k, ta, tb in shapes:
        a = torch.randn(k, m).t() if ta else torch.randn(m, k)
        b = torch.randn(n, k).t() if tb else torch.randn(k, n)
        for _ in range(2):
            torch.matmul(a, b)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            times.append((time.perf_counter() - t0) * 1e3)
        out.append(min(times))  # best of reps, like bench/run.ts's sgemm table
    return out


class Adapted(nn.Module):
    """A frozen linear plus an optional LoRA (x·Aᵀ·Bᵀ·s) or AdaLoRA (x·(A⊙E)ᵀ·Bᵀ·s/(ranknum+1e-5)) path."""

    def __init__(self, fin, fout, kind):
        super().__init__()
        r = 12 if kind == "lora-ada" else 8
        kind = "lora" if kind == "lora-ada" else kind
        self.base = nn.Linear(fin, fout)
        self.kind = kind
        self.drop = nn.Dropout(0.1)
        if kind == "lora":
            self.A = nn.Parameter(torch.randn(r, fin) / math.sqrt(fin))
            self.B = nn.Parameter(torch.zeros(fout, r))
            self.s = 16 / 8 if r == 8 else 1.0
        elif kind == "adalora":
            self.A = nn.Parameter(torch.randn(12, fin) * 0.02)
            self.E = nn.Parameter(torch.zeros(12, 1))
            self.B = nn.Parameter(torch.randn(fout, 12) * 0.02)
            self.ranknum = 12.0
            self.s = 1.0

    def forward(self, x):
        y = self.base(x)
        if self.kind == "lora":
            y = y + (self.drop(x) @ self.A.t() @ self.B.t()) * self.s
        elif self.kind == "adalora":
            y = y + (self.drop(x) @ (self.A * self.E).t() @ self.B.t()) * self.s / (self.ranknum + 1e-5)
        return y


class Layer(nn.Module):
    def __init__(self, kind, targets):
        super().__init__()
        k = lambda name: kind if name in targets else None
        self.q, self.k, self.v = Adapted(H, H, k("query")), Adapted(H, H, k("key")), Adapted(H, H, k("value"))
        self.o = Adapted(H, H, k("attention.output.dense"))
        self.ln1, self.ln2 = nn.LayerNorm(H, eps=1e-12), nn.LayerNorm(H, eps=1e-12)
        self.fc1, self.fc2 = Adapted(H, FFN, k("intermediate.dense")), Adapted(FFN, H, k("output.dense"))
        self.drop = nn.Dropout(0.1)

    def forward(self, x, mask):
        split = lambda t: t.view(B, T, NH, H // NH).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(H // NH) + mask
        ctx = (self.drop(scores.softmax(-1)) @ v).transpose(1, 2).reshape(B, T, H)
        x = self.ln1(x + self.drop(self.o(ctx)))
        return self.ln2(x + self.drop(self.fc2(F.gelu(self.fc1(x)))))


class Bert(nn.Module):
    def __init__(self, kind, targets):
        super().__init__()
        self.word, self.pos, self.tok_type = nn.Embedding(V, H), nn.Embedding(512, H), nn.Embedding(2, H)
        self.ln = nn.LayerNorm(H, eps=1e-12)
        self.layers = nn.ModuleList([Layer(kind, targets) for _ in range(L)])
        self.pool, self.cls = nn.Linear(H, H), nn.Linear(H, 2)
        self.drop = nn.Dropout(0.1)

    def forward(self, ids, mask, labels):
        x = self.word(ids) + self.pos(torch.arange(T))[None] + self.tok_type(torch.zeros_like(ids))
        x = self.drop(self.ln(x))
        m = (1.0 - mask[:, None, None, :].float()) * -1e9
        for layer in self.layers:
            x = layer(x, m)
        logits = self.cls(self.drop(torch.tanh(self.pool(x[:, 0]))))
        return F.cross_entropy(logits, labels)


def adalora_extras(model):
    """PEFT AdaLoRA: orthogonal regulariser term and the per-step sensitivity EMA + masking."""
    mods = [m for m in model.modules() if isinstance(m, Adapted) and m.kind == "adalora"]
    state = {}

    def orth():
        reg = 0.0
        for m in mods:
            for p in (m.A, m.B):
                para = p if p is m.A else p.t()
                eye = torch.eye(para.shape[0])
                reg = reg + torch.norm(para @ para.t() - eye, p="fro")
        return reg / len(mods) / 2

    @torch.no_grad()
    def update_and_allocate(step):
        scores = []
        for m in mods:
            for name, p in (("A", m.A), ("E", m.E), ("B", m.B)):
                ipt = (p * p.grad).abs()
                key = (id(m), name)
                if key not in state:
                    state[key] = [torch.zeros_like(p), torch.zeros_like(p)]
                ema, unc = state[key]
                ema.mul_(0.85).add_(ipt, alpha=0.15)
                unc.mul_(0.85).add_((ipt - ema).abs(), alpha=0.15)
            sA = (state[(id(m), "A")][0] * state[(id(m), "A")][1]).mean(1, keepdim=True)
            sB = (state[(id(m), "B")][0] * state[(id(m), "B")][1]).mean(0, keepdim=True).t()
            scores.append((state[(id(m), "E")][0] * state[(id(m), "E")][1] + sA + sB).view(-1))
        allv = torch.cat(scores)
        k = allv.numel() - 8 * len(mods)
        threshold = torch.kthvalue(allv, k)[0]
        for m, s in zip(mods, scores):
            m.E.masked_fill_(s.view(-1, 1) <= threshold, 0.0)

    return orth, update_and_allocate


def bench_step(kind, steps):
    torch.manual_seed(0)
    targets = {"lora": ["query", "value"], "full": []}.get(kind) or [
        "query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
    model = Bert(kind if kind != "full" else None, targets)
    if kind != "full":
        for n, p in model.named_parameters():
            p.requires_grad = n.endswith((".A", ".B", ".E")) or n.startswith(("cls.",))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, V, (B, T))
    mask = (torch.arange(T)[None, :] < T * 3 // 4).long().expand(B, T)
    labels = torch.randint(0, 2, (B,))
    orth, allocate = adalora_extras(model) if kind == "adalora" else (None, None)
    model.train()
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        loss = model(ids, mask, labels)
        if orth:
            loss = loss + 0.5 * orth()
        loss.backward()
        opt.step()
        if allocate:
            allocate(step)
        opt.zero_grad()
        if step > 0:  # first step warms up
            times.append((time.perf_counter() - t0) * 1e3)
    return {"ms": sorted(times)[len(times) // 2], "peakRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "trainable": sum(p.numel() for p in params)}


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[3]))
    if sys.argv[1] == "sgemm":
        print(json.dumps({"torch": torch.__version__, "ms": bench_sgemm(json.loads(sys.argv[2]), int(sys.argv[4]))}))
    else:
        print(json.dumps({"torch": torch.__version__, **bench_step(sys.argv[2], int(sys.argv[4]))}))
