"""The engine benchmark's block in PyTorch, for side-by-side timings (optional; Debian python3-torch).

Same shapes and the same measurement as bench/engine.ts: forward under no_grad, and forward +
backward with the gradient w.r.t. a 768x768 matrix applied to the block input. Prints one JSON line.
"""
import json
import math
import statistics
import time

import torch

torch.set_num_threads(1)
torch.manual_seed(0)
D, H, MLP, SEQ = 768, 12, 3072, 128


def timed(fn, runs=30, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def w(*shape):
    return torch.randn(*shape) * 0.02


ln1_w, ln1_b, ln2_w, ln2_b = w(D) + 1, w(D), w(D) + 1, w(D)
attn_w, attn_b, proj_w, proj_b = w(D, 3 * D), w(3 * D), w(D, D), w(D)
fc_w, fc_b, fcp_w, fcp_b = w(D, MLP), w(MLP), w(MLP, D), w(D)
mask = torch.triu(torch.full((SEQ, SEQ), torch.finfo(torch.float32).min), diagonal=1)


def block(x):
    b, t, _ = x.shape
    a = torch.nn.functional.layer_norm(x, (D,), ln1_w, ln1_b)
    q, k, v = torch.addmm(attn_b, a.view(-1, D), attn_w).view(b, t, 3 * D).split(D, dim=-1)
    q, k, v = (z.view(b, t, H, D // H).transpose(1, 2) for z in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(D // H) + mask
    o = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, D)
    h = x + torch.addmm(proj_b, o.view(-1, D), proj_w).view(b, t, D)
    m = torch.nn.functional.layer_norm(h, (D,), ln2_w, ln2_b)
    f = torch.nn.functional.gelu(torch.addmm(fc_b, m.view(-1, D), fc_w), approximate="tanh")
    return h + torch.addmm(fcp_b, f, fcp_w).view(b, t, D)


x = torch.randn(1, SEQ, D)
rotation = (torch.randn(D, D) * 0.01).requires_grad_()
upstream = torch.randn(1, SEQ, D)


def forward():
    with torch.no_grad():
        block(x @ rotation)


def forward_backward():
    rotation.grad = None
    block(x @ rotation).backward(upstream)


gflops = []
for m, k, n in [(128, 768, 3072), (512, 768, 768)]:
    a, b = torch.randn(m, k), torch.randn(k, n)
    ms = timed(lambda: a @ b)
    gflops.append(2 * m * k * n / (ms * 1e6))

print(json.dumps({
    "torch": torch.__version__,
    "forward_ms": timed(forward),
    "forward_backward_ms": timed(forward_backward),
    "matmul_gflops": gflops,
}))
