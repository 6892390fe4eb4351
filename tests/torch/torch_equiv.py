#!/usr/bin/python3
"""Thorax against PyTorch on the same weights: forward and one training step.

    tests/torch/torch_equiv.py --torch-check BUILD/tests/torch_check --work DIR [CASE ...]

For each case (default: all) it builds the PyTorch network with random,
seeded weights (batch-norm weights, biases and running statistics too, so
that eval mode is not the identity), keeping its RGB first convolution,
saves the state dict, imports it with tools/import-torch.py --keep-head
(which folds that convolution to gray), and computes in float64 on a gray
batch repeated to RGB:
  - the eval-mode logits,
  - the train-mode logits and the gradient of every parameter for the loss
    Thorax's trainer takes with `loss: bce`: binary cross-entropy summed over
    labels and averaged over images.
It writes them with the input to DATA.h5 and runs torch_check, which loads
the imported checkpoint into the config's Thorax model, does the same in
float32 and compares (tests/tools/torch_check.c).

Cases: sequential (tests/torch/sequential.yaml, a chain of layers),
resnet18 (configs/resnet18.yaml), densenet121 (configs/densenet121.yaml),
resnet50 (configs/resnet50.yaml: bottleneck blocks), vgg16 (configs/vgg16.yaml:
its flatten + dense head, sized for 64x64 images, see vgg16_small).
Exits 1 when a case fails.
"""
import argparse
import copy
import os
import subprocess
import sys
import time

try:
    import h5py
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except ImportError:
    # Another python3 first on PATH (pyenv): Debian's has torch and h5py.
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES = 4
LABELS = 3
SEED = 20240517


class SequentialNet(nn.Module):
    """tests/torch/sequential.yaml: attribute names are Thorax's automatic layer names."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 16, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.avg_pool2d(F.relu(self.bn1(self.conv2(x))), 2)
        x = F.relu(self.bn2(self.conv3(x)))
        return self.fc(x.mean(dim=(2, 3)))


# VGG-16's side here: its five pools leave 2x2 maps, so that flatten's
# order (channel-major, as torch.flatten) is tested on more than one pixel.
VGG_SIDE = 64


def vgg16_small(num_classes):
    """torchvision's VGG-16 with its head sized for VGG_SIDE images.

    Its AdaptiveAvgPool2d(7) would replicate 2x2 maps to 7x7: at 224x224,
    where the maps are 7x7 already, it is the identity, which configs/
    vgg16.yaml leaves out; here it is made the identity, and classifier.0
    reads the 512x2x2 maps (2048 inputs, not 25088). The rest of the head is
    torchvision's: 4096 units twice, ReLU, dropout, `num_classes` outputs.
    The dropouts are p=0 on both sides (VGG_SETS), so that the training
    step is deterministic: their masks come from different generators.
    """
    model = torchvision.models.vgg16(num_classes=num_classes)
    side = VGG_SIDE // 32
    model.avgpool = nn.Identity()
    model.classifier[0] = nn.Linear(512 * side * side, 4096)
    for i in (2, 5):
        model.classifier[i].p = 0.0
    return model


# configs/vgg16.yaml's classifier.2 and classifier.5 (model.layers[34], [37]).
VGG_SETS = ["model.layers[34].p=0", "model.layers[37].p=0"]

# name -> (PyTorch network for L labels, Thorax config, image side, further
# --set overrides). The graph networks run on 64x64 images: small enough to
# be quick, large enough for DenseNet's and VGG's halvings after the stem.
CASES = {
    "sequential": (SequentialNet, "tests/torch/sequential.yaml", 32, []),
    "resnet18": (lambda n: torchvision.models.resnet18(num_classes=n), "configs/resnet18.yaml", 64, []),
    "densenet121": (lambda n: torchvision.models.densenet121(num_classes=n), "configs/densenet121.yaml", 64, []),
    "resnet50": (lambda n: torchvision.models.resnet50(num_classes=n), "configs/resnet50.yaml", 64, []),
    "vgg16": (vgg16_small, "configs/vgg16.yaml", VGG_SIDE, VGG_SETS),
}


def randomise_norms_and_biases(model, gen):
    """Batch-norm affine parameters and running statistics away from 1 and 0,
    and biases away from 0, where PyTorch initialises them."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            elif isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def first_conv(model):
    """Name of the stem convolution's weight: the one the importer folds."""
    return next(name for name, p in model.named_parameters() if p.dim() == 4)


class KinkWatch:
    """Keeps ReLU inputs off the kink at 0, or measures how far off they are.

    ReLU's derivative jumps at 0, so an input within float32 rounding of 0
    may fall on either side in Thorax and in the float64 reference. In train
    mode batch-norm couples every position of a channel, so one such input
    moves whole gradient tensors by percents: a DenseNet-121 batch of 4 at
    64x64 has about one, and PyTorch's own float32 gradients are then 3e-2
    off its float64 ones. With `nudge`, a forward pass shifts the bias that
    feeds each ReLU (the batch-norm or biased convolution that ran last
    before it: everything between is additive, as a residual sum is) just
    enough to keep every input MARGIN (of its channel's RMS) away from 0.
    Both sides then use the nudged weights: the shifts, about 1e-3, only
    move the test to a point where the gradient is well defined at float32
    precision. Without `nudge`, it records the smallest distance seen.

    MARGIN must exceed the float32 error of a ReLU input, which grows with
    depth: at ResNet-50's last block it reaches 4.5e-4 of the channel's RMS,
    in PyTorch's float32 forward and in Thorax's alike (3e-4 to 4.5e-4 at 4
    or 8 images, 64x64 to 128x128: more images or pixels do not shrink it).
    At 1e-4, an input nudged to exactly that distance crossed 0 in Thorax
    (one value at layer4.2's add + ReLU: -1.6e-4, 1e-4 RMS, in float64,
    +3.2e-5 in float32) and moved every gradient by 5e-3; 3 of 6 seeds
    failed so. At 1e-3 all 6 pass, the worst gradient at 1.5e-4.
    """

    MARGIN = 1e-3

    def __init__(self, model, nudge):
        self.nudge = nudge
        self.last = None  # the module whose bias feeds the next ReLU
        self.smallest = float("inf")
        self.hooks = []
        # A residual block's last batch-norms (the main path's and the
        # shortcut's) feed the sum, not a ReLU: checked there, at the sum, and
        # their own outputs may come near 0 once the sum's nudge moves them.
        summed = set()
        for m in model.modules():
            if isinstance(m, torchvision.models.resnet.BasicBlock):
                summed.add(m.bn2)
            elif isinstance(m, torchvision.models.resnet.Bottleneck):
                summed.add(m.bn3)
            if isinstance(m, (torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck)):
                if m.downsample is not None:
                    summed.add(m.downsample[1])
        for m in model.modules():
            if m in summed:
                self.hooks.append(m.register_forward_hook(self.before_sum))
            elif isinstance(m, nn.BatchNorm2d):
                # Batch-norm outputs are ReLU inputs in DenseNet, which calls F.relu, a function no hook sees.
                self.hooks.append(m.register_forward_hook(self.after_biased))
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                # VGG's ReLUs follow biased convolutions and, in its head, dense layers.
                self.hooks.append(m.register_forward_hook(self.after_biased))
            elif isinstance(m, nn.ReLU):
                self.hooks.append(m.register_forward_pre_hook(self.before_relu))

    def remove(self):
        for h in self.hooks:
            h.remove()

    def check(self, z, module):
        """z, shifted (nudge) or measured: per channel, every |z| >= MARGIN * RMS."""
        v = z.detach().transpose(0, 1).reshape(z.shape[1], -1)
        rms = v.pow(2).mean(dim=1).sqrt()
        margins = v.abs().min(dim=1).values / rms
        self.smallest = min(self.smallest, margins.min().item())
        if not self.nudge or margins.min() >= self.MARGIN:
            return z
        shift = torch.zeros(z.shape[1], dtype=z.dtype)
        for c in torch.nonzero(margins < self.MARGIN).flatten().tolist():
            shift[c] = nearest_clear(np.sort(-v[c].numpy()), self.MARGIN * rms[c].item())
        with torch.no_grad():
            module.bias += shift.to(module.bias.dtype)
        # z is [N,C,H,W] after a convolution or batch-norm, [N,C] after a dense layer.
        return z + shift.view(1, -1, *[1] * (z.dim() - 2))

    def after_biased(self, module, inputs, output):
        self.last = module
        return self.check(output, module) if isinstance(module, nn.BatchNorm2d) else output

    def before_sum(self, module, inputs, output):
        self.last = module

    def before_relu(self, module, inputs):
        return (self.check(inputs[0], self.last),)


def nearest_clear(centres, d):
    """The s nearest 0 with |s - c| >= d for every c of the sorted centres."""
    best = None
    for step in (1, -1):
        s = 0.0
        # Walk outwards from 0 over the centres that could be within d of s
        # (ahead of s - d); each one that is pushes s just past it.
        i = np.searchsorted(centres, -d, side="right") if step > 0 else np.searchsorted(centres, d) - 1
        while 0 <= i < len(centres) and step * (centres[i] - s) < d:
            if abs(centres[i] - s) < d:
                s = centres[i] + step * d
            i += step
        if best is None or abs(s) < abs(best):
            best = s
    return best


def keep_off_kinks(model, x_gray):
    """Nudges model's biases so that no ReLU input of the train-mode forward is near 0 (KinkWatch)."""
    work = copy.deepcopy(model).double().train()
    watch = KinkWatch(work, nudge=True)
    with torch.no_grad():
        work(x_gray.double().repeat(1, 3, 1, 1))
    watch.remove()
    with torch.no_grad():
        for (name, p), q in zip(model.named_parameters(), work.parameters()):
            p.copy_(q)


def reference(model, x_gray, labels):
    """Eval logits, train logits and parameter gradients in float64, and the
    smallest distance of a train-mode ReLU input from 0."""
    model = copy.deepcopy(model).double()
    x = x_gray.double().repeat(1, 3, 1, 1)  # a gray image as an RGB network sees it
    model.eval()
    with torch.no_grad():
        logits_eval = model(x)
    model.train()
    watch = KinkWatch(model, nudge=False)
    logits_train = model(x)
    watch.remove()
    loss = F.binary_cross_entropy_with_logits(logits_train, labels.double(), reduction="sum") / x.shape[0]
    loss.backward()
    stem = first_conv(model)
    grads = {}
    for name, p in model.named_parameters():
        g = p.grad
        if name == stem:
            # The three input channels see the same image, so each RGB slice
            # of the gradient is the gradient of the folded weight.
            assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 0], g[:, 2]), name
            g = g[:, :1]
        grads[name] = g.detach().numpy()
    return logits_eval.numpy(), logits_train.detach().numpy(), grads, watch.smallest


def run_case(name, work, torch_check):
    build, config, size, sets = CASES[name]
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = build(LABELS)
    randomise_norms_and_biases(model, gen)
    x = torch.randn(IMAGES, 1, size, size, generator=gen)
    labels = (torch.rand(IMAGES, LABELS, generator=gen) < 0.5).to(torch.uint8)
    keep_off_kinks(model, x)

    pth, ckpt, data = (os.path.join(work, f"{name}{ext}") for ext in (".pth", ".h5", "_data.h5"))
    torch.save(model.state_dict(), pth)
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools/import-torch.py"), pth, ckpt, "--keep-head"], check=True
    )
    logits_eval, logits_train, grads, margin = reference(model, x, labels)
    print(f"smallest ReLU input of the train-mode forward: {margin:.2g} of its channel's RMS away from 0")
    if margin < KinkWatch.MARGIN / 2:
        print(f"{name}: a ReLU input is within float32 reach of 0, so the gradients are not well defined")
        return False
    with h5py.File(data, "w") as f:
        f["x"] = x.numpy()
        f["labels"] = labels.numpy()
        f["logits_eval"] = logits_eval
        f["logits_train"] = logits_train
        for pname, g in grads.items():
            f[f"grads/{pname}"] = g

    cmd = [torch_check, os.path.join(ROOT, config), ckpt, data, "--set", f"model.input=[1,{size},{size}]"]
    for kv in sets:
        cmd += ["--set", kv]
    return subprocess.run(cmd).returncode == 0


def main():
    p = argparse.ArgumentParser(description="Compare Thorax with PyTorch on imported weights.")
    p.add_argument("cases", nargs="*", metavar="CASE", help=f"of {', '.join(CASES)} (default: all)")
    p.add_argument("--torch-check", required=True, help="the torch_check executable (build/tests/torch_check)")
    p.add_argument("--work", required=True, help="directory for the .pth, checkpoint and data files")
    args = p.parse_args()
    for c in args.cases:
        if c not in CASES:
            p.error(f"unknown case '{c}'; the cases are {', '.join(CASES)}")
    torch.set_num_threads(2)
    sys.stdout.reconfigure(line_buffering=True)  # in order with torch_check's output

    failed = []
    for name in args.cases or list(CASES):
        t0 = time.monotonic()
        print(f"=== {name}", flush=True)
        ok = run_case(name, args.work, args.torch_check)
        print(f"=== {name}: {'ok' if ok else 'FAIL'} ({time.monotonic() - t0:.1f} s)", flush=True)
        if not ok:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
