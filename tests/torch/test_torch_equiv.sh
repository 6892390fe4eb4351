#!/usr/bin/env bash
# test_torch_equiv.sh - weights imported from PyTorch (tools/import-torch.py)
# give PyTorch's answers in Thorax: eval-mode logits to 1e-4 and the
# gradients of one training step to 1e-3, relative, on a chain network,
# ResNet-18, DenseNet-121, ResNet-50 and VGG-16 (tests/torch/torch_equiv.py,
# torch_check).
# Exit 77 (skip) where Debian's python3 cannot import torch, torchvision and
# h5py (tools/install-test-deps.sh installs python3-torch, python3-torchvision
# and python3-h5py).
source "$(dirname "$0")/../integration/lib.sh"

py=/usr/bin/python3
if ! why=$("$py" -c 'import torch, torchvision, h5py' 2>&1); then
  echo "SKIP: $py cannot import torch, torchvision and h5py: ${why##*$'\n'}"
  exit 77
fi
"$py" "$THORAX_SOURCE_DIR/tests/torch/torch_equiv.py" --torch-check "$TOOLS/torch_check" --work "$WORK"
