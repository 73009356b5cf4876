"""PyTorch anchor for BENCHMARKS.md: the U-Net's forward pass and DDPM sampling, no gradients.

The same model as torch_step.py (the tutorial's U-Net, all weights), under torch.no_grad(): the forward
pass at batch 9 and 1000, then DDPM sampling of B images over K steps (the cosine schedule's betas, the
posterior variance beta as sigma^2, no clipping), as `npm run bench -- --sampling BxK` times ours.
Prints seconds (forward: median of 3 after a warm-up; sampling: one run after a warm-up run of 2 steps).

Usage: OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/anchors/torch_sample.py --features 16 [--threads 2] [--sampling 100x1000]
(Debian's python3-torch, PyTorch 1.13.)
"""
import argparse, math, statistics, time
import torch
from torch_step import UNet


def betas_cosine(steps):
    s = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
    ac = torch.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    ac = ac / ac[0]
    return torch.clamp(1 - ac[1:] / ac[:-1], 1e-4, 0.02).float()


def ddpm(model, batch, steps):
    betas = betas_cosine(steps)
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    x = torch.randn(batch, 1, 8, 8)
    for i in reversed(range(steps)):
        t = torch.full((batch,), i, dtype=torch.long)
        eps = model(x, t)
        mean = (x - betas[i] / torch.sqrt(1 - abar[i]) * eps) / torch.sqrt(alphas[i])
        x = mean + (torch.sqrt(betas[i]) * torch.randn_like(x) if i > 0 else 0)
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sampling", default="100x1000")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = UNet(args.features).eval()
    with torch.no_grad():
        forward = {}
        for batch in (9, 1000):
            x, t = torch.randn(batch, 1, 8, 8), torch.randint(0, 1000, (batch,))
            model(x, t)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                model(x, t)
                times.append(time.perf_counter() - start)
            forward[batch] = statistics.median(times)
        batch, steps = (int(v) for v in args.sampling.split("x"))
        ddpm(model, batch, 2)
        start = time.perf_counter()
        ddpm(model, batch, steps)
        sampling = time.perf_counter() - start
    print(f"pytorch {torch.__version__} threads {args.threads} features {args.features} "
          f"forward_b9_s {forward[9]:.4f} forward_b1000_s {forward[1000]:.4f} sampling_{batch}x{steps}_s {sampling:.3f}")


if __name__ == "__main__":
    main()
