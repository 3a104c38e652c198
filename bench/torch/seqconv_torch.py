#!/usr/bin/env python3
"""A PyTorch implementation of the SeqConv models, written from docs/ARCHITECTURE.md (Layers, Models),
used as the baseline of seqconv's benchmarks (it is not part of the Go build).

    python3 seqconv_torch.py golden  [--golden ../../models/testdata/golden.json]
    python3 seqconv_torch.py bench   --model seqresnet-cifar-demo --batch 64 --mode train [--device cuda] [--steps 10]

`golden` checks it against the float64 outputs of the authors' code (docs/ARCHITECTURE.md, Golden values), so the
benchmark compares like with like. `bench` prints one JSON line: median step time, images/s, first-step time.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def msr_init_(conv, weight_scale=None):
    """U(-b, b), b = sqrt(3)*sqrt(2)/sqrt(out*kh*kw); junction convs scale b by weight_scale (0: zeros)."""
    out, _, kh, kw = conv.weight.shape
    b = math.sqrt(3) * math.sqrt(2) / math.sqrt(out * kh * kw)
    if weight_scale is not None:
        b *= weight_scale
    with torch.no_grad():
        if b == 0:
            conv.weight.zero_()
        else:
            conv.weight.uniform_(-b, b)


class ConvUnit(nn.Module):
    """conv -> (+ shortcut on the raw output) -> BN -> ReLU; returns (raw, activated)."""

    def __init__(self, cin, cout, k=3, stride=1, groups=1, junction=None):
        super().__init__()
        self.LinearLayer = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)
        self.BatchNormalizationLayer = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        msr_init_(self.LinearLayer, junction)

    def forward(self, x, shortcut=None):
        raw = self.LinearLayer(x)
        if shortcut is not None:
            raw = raw + shortcut
        return raw, self.relu(self.BatchNormalizationLayer(raw))


class Filter(nn.Module):
    def __init__(self, width, k, bottleneck, subgroups, junction):
        super().__init__()
        self.bottleneck = bottleneck
        if bottleneck:
            self.BottleneckLayer = ConvUnit(width, k, 1)
            self.TransformationLayer = ConvUnit(k, k, 3, groups=subgroups, junction=junction)
        else:
            self.unit = ConvUnit(width, k, 3, junction=junction)

    def forward(self, x, shortcut=None):
        if self.bottleneck:
            _, h = self.BottleneckLayer(x)
            return self.TransformationLayer(h, shortcut)
        return self.unit(x, shortcut)


class SeqConv(nn.Module):
    """Filter j reads the last `window` channels of [x, E_0..E_{j-1}] (all of them when dense)."""

    def __init__(self, cin, cout, k, dense=False, bottleneck=True, subgroups=1, junction=None, drop=0.0):
        super().__init__()
        self.k, self.n, self.dense, self.window = k, cout // k, dense, cin
        widths = [cin + j * k if dense else cin for j in range(self.n)]
        self.Filters = nn.ModuleList(Filter(w, k, bottleneck, subgroups, junction) for w in widths)
        self.drop = nn.Dropout2d(drop) if drop > 0 else None

    def forward(self, x, shortcut=None):
        view, raws, acts = x, [], []
        for j, f in enumerate(self.Filters):
            inp = self.drop(view) if self.drop is not None else view
            s = None if shortcut is None else shortcut[:, j * self.k:(j + 1) * self.k]
            r, a = f(inp, s)
            raws.append(r)
            acts.append(a)
            view = torch.cat([view, a], 1)
            if not self.dense:
                view = view[:, view.shape[1] - self.window:]
        return torch.cat(raws, 1), torch.cat(acts, 1)


class Block(nn.Module):
    def __init__(self, c, k, bottleneck, subgroups, drop):
        super().__init__()
        self.LayerA = SeqConv(c, c, k, bottleneck=bottleneck, subgroups=subgroups, drop=drop)
        self.LayerB = SeqConv(c, c, k, bottleneck=bottleneck, subgroups=subgroups, junction=0.0, drop=drop)

    def forward(self, r, a):
        _, a = self.LayerA(a)
        return self.LayerB(a, r)


class Downsample(nn.Module):
    def __init__(self, cin, cout, k, k_next, bottleneck, subgroups, subgroups_next, drop):
        super().__init__()
        self.ExtensionLayer = SeqConv(cin, cout - cin, k, bottleneck=bottleneck, subgroups=subgroups, drop=drop)
        self.ShrinkingLayer = ConvUnit(cout, cout, 3, 2, groups=cout // k_next * subgroups_next)

    def forward(self, x):
        _, e = self.ExtensionLayer(x)
        return self.ShrinkingLayer(torch.cat([x, e], 1))


class Classifier(nn.Linear):
    def __init__(self, cin, classes):
        super().__init__(cin, classes)
        a = math.sqrt(3) / math.sqrt(classes)
        with torch.no_grad():
            self.weight.uniform_(-a, a)
            self.bias.zero_()


class CIFAR(nn.Module):
    def __init__(self, classes=10, blocks=(1, 1, 1), pyramid=(1, 2, 3), widening=7, k=16, bottleneck=True,
                 drop=0.1, in_channels=3):
        super().__init__()
        w = [int(16 * p / pyramid[0] * widening) for p in pyramid]
        self.Init = ConvUnit(in_channels, 16, 3)
        self.Head = SeqConv(16, w[0], k, dense=True, bottleneck=bottleneck)
        self.stages = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i in range(3):
            if i > 0:
                self.downs.append(Downsample(w[i - 1], w[i], k, k, bottleneck, 1, 1, drop))
            self.stages.append(nn.ModuleList(Block(w[i], k, bottleneck, 1, drop) for _ in range(blocks[i])))
        self.drop = nn.Dropout2d(drop) if drop > 0 else nn.Identity()
        self.Blender = ConvUnit(w[2], w[2], 1)
        self.Classifier = Classifier(w[2], classes)

    def forward(self, x):
        _, a = self.Init(x)
        r, a = self.Head(a)
        for i, stage in enumerate(self.stages):
            if i > 0:
                r, a = self.downs[i - 1](a)
            for b in stage:
                r, a = b(r, a)
        _, a = self.Blender(self.drop(a))
        return self.Classifier(a.mean((2, 3)))


class ImageNet(nn.Module):
    def __init__(self, classes=1000, blocks=(1, 1, 2, 1), widening=2, ks=(32, 64, 64, 128), subgroups=(1, 1, 1, 1)):
        super().__init__()
        w = [64 * widening * 2 ** i for i in range(4)]
        self.Head0 = ConvUnit(3, 32, 3, 2)
        self.Head1 = ConvUnit(32, 32, 3)
        self.Head2 = SeqConv(32, w[0], ks[0], dense=True, subgroups=subgroups[0])
        self.ShrinkingLayer = ConvUnit(w[0], w[0], 3, 2, groups=w[0] // ks[0] * subgroups[0])
        self.stages = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i in range(4):
            if i > 0:
                self.downs.append(Downsample(w[i - 1], w[i], ks[i - 1], ks[i], True, subgroups[i - 1],
                                             subgroups[i], 0.0))
            self.stages.append(nn.ModuleList(Block(w[i], ks[i], True, subgroups[i], 0.0) for _ in range(blocks[i])))
        self.Blender = ConvUnit(w[3], w[3], 1)
        self.Classifier = Classifier(w[3], classes)

    def forward(self, x):
        _, a = self.Head0(x)
        _, a = self.Head1(a)
        _, a = self.Head2(a)
        r, a = self.ShrinkingLayer(a)
        for i, stage in enumerate(self.stages):
            if i > 0:
                r, a = self.downs[i - 1](a)
            for b in stage:
                r, a = b(r, a)
        _, a = self.Blender(a)
        return self.Classifier(a.mean((2, 3)))


MODELS = {
    "seqresnet-cifar-demo": (lambda: CIFAR(), 32),
    "seqresnet-mnist": (lambda: CIFAR(blocks=(1, 1, 1), pyramid=(1, 2, 4), widening=1, k=16, drop=0.0,
                                      in_channels=1), 28),
    "seqresnet-b22": (lambda: ImageNet(), 224),
    "seqresnet-b42": (lambda: ImageNet(blocks=(3, 4, 5, 3)), 224),
    "seqresnext-24": (lambda: ImageNet(blocks=(1, 1, 3, 1), widening=4, subgroups=(8, 8, 4, 4)), 224),
}


def golden_fill(model):
    """The deterministic fill of docs/ARCHITECTURE.md, Golden values."""

    def h(a, b, c, d):
        v = math.sin(12.9898 * a + 78.233 * b + 37.719 * c + 4.581 * d + 0.5) * 43758.5453
        return v - math.floor(v)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                o, i, kh, kw = m.weight.shape
                s = math.sqrt(6 / (i * kh * kw))
                m.weight.copy_(torch.tensor([[[[s * (2 * h(a, b, c, d) - 1) for d in range(kw)] for c in range(kh)]
                                              for b in range(i)] for a in range(o)], dtype=m.weight.dtype))
            elif isinstance(m, nn.Linear):
                o, i = m.weight.shape
                s = math.sqrt(3 / i)
                m.weight.copy_(torch.tensor([[s * (2 * h(a, b, 0, 0) - 1) for b in range(i)] for a in range(o)],
                                            dtype=m.weight.dtype))
                m.bias.copy_(0.01 * torch.arange(o, dtype=m.bias.dtype))
            elif isinstance(m, nn.Dropout2d):
                m.p = 0.0


def golden(args):
    cases = {"CIFAR demo SeqResNetB (Demo.py config)": "seqresnet-cifar-demo",
             "ImageNet SeqResNet ModelLite config at 64x64": "seqresnet-b22"}
    ok = True
    for g in json.load(open(args.golden)):
        torch.manual_seed(0)
        model = MODELS[cases[g["title"]]][0]().double()
        golden_fill(model)
        n, res = g["batch"], g["res"]
        idx = torch.meshgrid(*(torch.arange(d, dtype=torch.float64) for d in (n, 3, res, res)), indexing="ij")
        x = torch.sin(0.9 * idx[0] + 1.7 * idx[1] + 0.31 * idx[2] + 0.23 * idx[3])
        model.eval()
        with torch.no_grad():
            ev = model(x)
        model.train()
        logits = model(x)
        loss = F.cross_entropy(logits, torch.tensor(g["labels"]))
        loss.backward()
        l2 = math.sqrt(sum(float((p.grad ** 2).sum()) for p in model.parameters()))
        got = {"eval_logits_sum": float(ev.sum()), "train_loss": float(loss), "grad_global_l2": l2}
        for key, val in got.items():
            rel = abs(val - g[key]) / abs(g[key])
            ok &= rel < 1e-6
            print(f"{g['title']}: {key} = {val:.10g} (reference {g[key]:.10g}, rel err {rel:.2g})")
    print("golden:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def bench(args):
    dev = torch.device(args.device)
    torch.set_num_threads(args.threads or os.cpu_count())
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(1)
    ctor, res = MODELS[args.model]
    model = ctor().to(dev)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    in_ch = 1 if args.model == "seqresnet-mnist" else 3
    x = torch.randn(args.batch, in_ch, res, res, device=dev)
    y = torch.randint(0, model.Classifier.out_features, (args.batch,), device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step():
        if args.mode == "train":
            model.train()
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        else:
            model.eval()
            with torch.no_grad(), autocast:
                model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    out = {"impl": "pytorch", "torch": torch.__version__, "device": str(dev), "model": args.model,
           "batch": args.batch, "mode": args.mode, "precision": args.precision, "threads": torch.get_num_threads(),
           "first_step_s": first, "median_step_s": med, "images_per_s": args.batch / med, "steps": args.steps}
    if dev.type == "cuda":
        out["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
    else:
        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps(out))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("golden")
    g.add_argument("--golden", default="models/testdata/golden.json")
    b = sub.add_parser("bench")
    b.add_argument("--model", default="seqresnet-cifar-demo", choices=sorted(MODELS))
    b.add_argument("--batch", type=int, default=64)
    b.add_argument("--mode", choices=["train", "infer"], default="train")
    b.add_argument("--device", default="cpu")
    b.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    b.add_argument("--steps", type=int, default=10)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--channels-last", action="store_true")
    b.add_argument("--threads", type=int, default=0, help="CPU threads (default: all CPUs; PyTorch's own default "
                   "can be 1 on small machines)")
    args = p.parse_args()
    return golden(args) if args.cmd == "golden" else bench(args)


if __name__ == "__main__":
    sys.exit(main())
