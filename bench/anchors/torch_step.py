"""PyTorch anchor for BENCHMARKS.md: the tutorial's training step with every weight trained.

Same model as src/nn/unet.ts (the tutorial's U-Net, NHWC semantics reproduced in NCHW), batch 172 of
8x8 images, SNR-weighted loss + 0.02 * gradient penalty (double backward), element-wise clip 0.3,
global-norm clip 0.5, AdamW. Prints seconds per step (median of timed steps after one warm-up).

Usage: OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/anchors/torch_step.py --features 16 [--threads 2] [--steps 3]
(Debian's python3-torch, PyTorch 1.13; install with `apt-get install python3-torch`.)
"""
import argparse, math, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def gelu(x):
    return F.gelu(x, approximate="tanh")


class LayerNormC(nn.Module):
    """LayerNorm over channels of NCHW maps, flax's fast variance, eps 1e-6."""
    def __init__(self, c):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(c)); self.bias = nn.Parameter(torch.zeros(c))
    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = torch.clamp((x * x).mean(1, keepdim=True) - mu * mu, min=0)
        return (x - mu) * torch.rsqrt(var + 1e-6) * self.scale[None, :, None, None] + self.bias[None, :, None, None]


class Res(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1); self.norm1 = LayerNormC(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1); self.norm2 = LayerNormC(cout)
        self.shortcut = nn.Conv2d(cin, cout, 1)
    def forward(self, x):
        h = gelu(self.norm1(self.conv1(x)))
        h = gelu(self.norm2(self.conv2(h)))
        return h + self.shortcut(x)


class Attn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.q = nn.Linear(c, c); self.k = nn.Linear(c, c); self.v = nn.Linear(c, c)
    def forward(self, x):
        b, c, h, w = x.shape
        t = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        a = torch.softmax(self.q(t) @ self.k(t).transpose(1, 2) / math.sqrt(c), -1)
        out = (a @ self.v(t)).reshape(b, h, w, c).permute(0, 3, 1, 2)
        return x + out


class UNet(nn.Module):
    def __init__(self, f, e=128):
        super().__init__()
        self.mlp1 = nn.Linear(e, e); self.mlp2 = nn.Linear(e, e)
        self.p = nn.ModuleList([nn.Linear(e, f * m) for m in (1, 2, 4, 8)])
        self.d1, self.d2, self.d3, self.d4 = Res(1, f), Res(f, 2 * f), Res(2 * f, 4 * f), Res(4 * f, 8 * f)
        self.a1, self.a2 = Attn(4 * f), Attn(8 * f)
        self.bd, self.ba, self.bu = Res(8 * f, 16 * f), Attn(16 * f), Res(16 * f, 16 * f)
        self.u4, self.u3, self.u2, self.u1 = Res(24 * f, 8 * f), Res(12 * f, 4 * f), Res(6 * f, 2 * f), Res(3 * f, f)
        self.fn = LayerNormC(f); self.fc = nn.Conv2d(f, 1, 3, padding=1)
        self.e = e

    def forward(self, x, t):
        half = self.e // 2
        freq = torch.exp(torch.arange(half) * -(math.log(10000.0) / (half - 1)))
        a = t[:, None].float() * freq[None]
        emb = self.mlp2(gelu(self.mlp1(torch.cat([torch.sin(a), torch.cos(a)], 1))))
        tp = [p(emb)[:, :, None, None] for p in self.p]
        pool = lambda z: F.max_pool2d(z, 2, 2, ceil_mode=True)
        up = lambda z, s: F.interpolate(z, size=s, mode="nearest")
        d1 = self.d1(x) + tp[0]
        d2 = self.d2(pool(d1)) + tp[1]
        d3 = self.a1(self.d3(pool(d2))) + tp[2]
        d4 = self.a2(self.d4(pool(d3))) + tp[3]
        b = self.bu(self.ba(self.bd(pool(d4))))
        u4 = self.u4(torch.cat([up(b, d4.shape[2:]), d4], 1))
        u3 = self.u3(torch.cat([up(u4, d3.shape[2:]), d3], 1))
        u2 = self.u2(torch.cat([up(u3, d2.shape[2:]), d2], 1))
        u1 = self.u1(torch.cat([up(u2, d1.shape[2:]), d1], 1))
        return self.fc(gelu(self.fn(u1)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=172)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = UNet(args.features)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=2e-5)
    steps = torch.linspace(0, 1000, 1001) / 1000
    ac = torch.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2
    ac = ac / ac[0]
    betas = torch.clamp(1 - ac[1:] / ac[:-1], 1e-4, 0.02)
    betas = torch.cat([betas[:1], betas])
    abar = torch.cumprod(1 - betas, 0)
    sa, s1 = abar.sqrt(), (1 - abar).sqrt()
    images = torch.rand(args.batch, 1, 8, 8)
    times = []
    for i in range(args.steps + 1):
        start = time.perf_counter()
        t = torch.randint(0, 1000, (args.batch,))
        noise = torch.randn_like(images)
        a, s = sa[t][:, None, None, None], s1[t][:, None, None, None]
        noisy = (a * images + s * noise).requires_grad_(True)
        pred = model(noisy, t)
        snr = a / s
        main_loss = (snr / (1 + snr) * (noise - pred) ** 2).mean()
        (gx,) = torch.autograd.grad(pred.mean(), noisy, create_graph=True)
        loss = main_loss + 0.02 * (gx ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p.grad.clamp_(-0.3, 0.3)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        if i > 0:
            times.append(time.perf_counter() - start)
    n = sum(p.numel() for p in model.parameters())
    print(f"pytorch {torch.__version__} threads {args.threads} features {args.features} params {n} step_s {statistics.median(times):.4f}")


if __name__ == "__main__":
    main()
