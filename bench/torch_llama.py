"""Plain-PyTorch reference for bench/memory.ts (Debian python3-torch 1.13; transformers is not
installable here): a Llama written out (RMSNorm, rotary, GQA attention, SwiGLU MLP), loaded from the
same safetensors folder, LoRA r=16 alpha=32 on q_proj and v_proj, AdamW, causal-LM loss on random
ids `(i·7919 + 13) mod vocab` (as bench/memory_worker.ts). Prints one JSON line like bench/memory_worker.ts.

  /usr/bin/python3 bench/torch_llama.py <folder> <batch> <seq> <steps> [threads]
"""
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MB = 2**20


def rss():
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            k, _, v = line.partition(':')
            if k in ('VmRSS', 'VmHWM'):
                out[k] = int(v.split()[0]) * 1024
    return out


def reset_peak():
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def read_safetensors(path):
    """Tensor by tensor from the file (no safetensors package): header JSON, then byte ranges."""
    with open(path, 'rb') as f:
        n = int.from_bytes(f.read(8), 'little')
        header = json.loads(f.read(n))
        header.pop('__metadata__', None)
        for name, info in sorted(header.items(), key=lambda kv: kv[1]['data_offsets'][0]):
            assert info['dtype'] == 'F32', info['dtype']
            b, e = info['data_offsets']
            f.seek(8 + n + b)
            buf = bytearray(f.read(e - b))
            yield name, torch.frombuffer(buf, dtype=torch.float32).reshape(info['shape'])


class LoraLinear(nn.Module):
    def __init__(self, base, r=16, alpha=32):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, self.nh, self.nkv = c['hidden_size'], c['num_attention_heads'], c['num_key_value_heads']
        self.hd = h // self.nh
        self.input_layernorm = RMSNorm(h, c['rms_norm_eps'])
        self.post_attention_layernorm = RMSNorm(h, c['rms_norm_eps'])
        self.q_proj = nn.Linear(h, h, bias=False)
        self.k_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(h, h, bias=False)
        i = c['intermediate_size']
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float('-inf')).softmax(-1)
        x = x + self.o_proj((att @ v).transpose(1, 2).reshape(B, T, -1))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c['vocab_size'], c['hidden_size'])
        self.layers = nn.ModuleList(Block(c) for _ in range(c['num_hidden_layers']))
        self.norm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])
        self.lm_head = nn.Linear(c['hidden_size'], c['vocab_size'], bias=False)
        if c.get('tie_word_embeddings'):
            self.lm_head.weight = self.embed_tokens.weight

    def forward(self, ids):
        T = ids.shape[1]
        hd = self.c['hidden_size'] // self.c['num_attention_heads']
        inv = 1.0 / (self.c.get('rope_theta', 10000.0) ** (torch.arange(0, hd, 2).float() / hd))
        freqs = torch.outer(torch.arange(T).float(), inv)
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def main():
    folder, batch, seq, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(int(sys.argv[5]) if len(sys.argv) > 5 else 2)
    torch.manual_seed(0)
    config = json.load(open(os.path.join(folder, 'config.json')))
    config.setdefault('rms_norm_eps', 1e-5)
    before = rss()['VmRSS']
    reset_peak()
    t0 = time.perf_counter()
    model = Llama(config)  # torch 1.13 has no meta-device context: init then overwrite, as transformers 4.x without accelerate
    state = dict(read_safetensors(os.path.join(folder, 'model.safetensors')))
    prefixed = {k[len('model.'):] if k.startswith('model.') else k: v for k, v in state.items()}
    fixed = {}
    for k, v in prefixed.items():
        parts = k.split('.')
        if len(parts) > 3 and parts[0] == 'layers' and parts[2] in ('self_attn', 'mlp'):
            k = '.'.join(parts[:2] + parts[3:])
        fixed[k] = v
    model.load_state_dict(fixed, strict=False)
    del state, prefixed, fixed
    load_seconds = time.perf_counter() - t0
    after = rss()
    out = {'impl': 'torch', 'loadSeconds': load_seconds, 'rssBeforeMb': before // MB,
           'loadPeakMb': after['VmHWM'] // MB, 'afterLoadMb': after['VmRSS'] // MB}
    if steps:
        for p in model.parameters():
            p.requires_grad_(False)
        for block in model.layers:
            block.q_proj = LoraLinear(block.q_proj)
            block.v_proj = LoraLinear(block.v_proj)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)
        # the ids bench/memory_worker.ts uses, so the first-step losses can be compared
        ids = ((torch.arange(batch * seq, dtype=torch.int64) * 7919 + 13) % config['vocab_size']).reshape(batch, seq)
        reset_peak()
        times = []
        losses = []
        for _ in range(steps):
            t0 = time.perf_counter()
            loss = model(ids)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
            times.append(time.perf_counter() - t0)
        out.update({'batch': batch, 'seq': seq, 'stepSeconds': times, 'stepPeakMb': rss()['VmHWM'] // MB,
                    'loss': loss.item(), 'losses': losses})
    print(json.dumps(out))


if __name__ == '__main__':
    main()
