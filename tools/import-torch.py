#!/usr/bin/python3
"""Imports PyTorch weights (a torchvision state dict) as a Thorax checkpoint.

    tools/import-torch.py IN.pth OUT.h5 [--keep-head] [--head-names fc,classifier]
                          [--strip-prefix module.]

IN.pth is what torch.save wrote: a state dict, a whole pickled nn.Module (its
state_dict() is taken), or a training checkpoint holding one under
'state_dict' or 'model'. OUT.h5 is a Thorax checkpoint with the parameters
alone (/params/<name>, float32), which th_checkpoint_load and a config's
`model.init` read. Thorax names its tensors as torchvision does
(configs/resnet18.yaml gives conv1.weight, layer1.0.bn1.running_var ...
fc.bias; configs/resnet50.yaml and resnet152.yaml layer1.0.conv3.weight,
layer1.0.downsample.0.weight ...; configs/vgg16.yaml features.0.weight ...
classifier.6.bias), so names are kept as they are, except that:

  - `num_batches_tracked` counters are dropped (Thorax has no such tensor);
  - old-style DenseNet keys are renamed as torchvision's own loader does
    (denselayer1.norm.1.weight -> denselayer1.norm1.weight);
  - the first convolution, when it reads 3 channels, is folded into one by
    summing its weights over the RGB axis: on a gray image repeated to RGB,
    which is what an ImageNet network sees of an X-ray, the folded
    convolution gives exactly the same output;
  - the classifier head (the modules named by --head-names) is left out,
    unless --keep-head, so that Thorax initialises it for the run's labels.
    VGG's whole `classifier` is its head by default, which is what
    configs/vgg16_gap.yaml (features alone) needs; for configs/vgg16.yaml,
    `--head-names classifier.6` keeps its two pretrained 4096-unit layers.

The file gets the CRC-32 checksums every Thorax checkpoint carries (see
"The checksum" in src/train/checkpoint.c), computed the same way, and is
written to OUT.h5.tmp and renamed into place.

Needs Debian's python3-torch and python3-h5py: run under another Python, the
script runs itself again with /usr/bin/python3.
"""
import argparse
import collections
import os
import re
import struct
import sys
import zlib

try:
    import h5py
    import numpy as np
    import torch
except ImportError:
    # Another python3 first on PATH (pyenv): Debian's has torch and h5py.
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

CRC_ATTR = "crc32"

# torchvision's DenseNet._load_state_dict pattern: checkpoints from before
# torchvision 0.3 name a dense layer's modules norm.1, conv.2 ... instead of
# norm1, conv2.
OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


class ImportFailure(Exception):
    """An error the user can act on; main prints it and exits 1."""


def load_state_dict(path):
    """The name -> tensor mapping that torch.save wrote to path."""
    if not os.path.isfile(path):
        raise ImportFailure(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu")
    except (AttributeError, ModuleNotFoundError) as e:
        # A pickled nn.Module whose class is not importable here.
        raise ImportFailure(
            f"{path}: torch.load cannot rebuild the pickled model ({e}); save its state_dict() instead"
        ) from e
    except Exception as e:  # torch.load raises anything from pickle and zip
        raise ImportFailure(f"{path}: torch.load cannot read it ({type(e).__name__}: {e})") from e
    if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        for key in ("state_dict", "model"):
            if key in obj:
                obj = obj[key]
                break
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise ImportFailure(f"{path}: not a state dict or nn.Module, but a {type(obj).__name__}")
    for name, value in obj.items():
        if not isinstance(name, str):
            raise ImportFailure(f"{path}: not a state dict: key {name!r} is of type {type(name).__name__}, not a name")
        if not torch.is_tensor(value):
            kind = type(value).__name__
            raise ImportFailure(f"{path}: not a state dict: '{name}' holds a value of type {kind}, not a tensor")
    if not obj:
        raise ImportFailure(f"{path}: the state dict is empty")
    return obj


def thorax_tensors(path, state, strip_prefix):
    """Thorax's tensors (name -> float64 array), in the state dict's order."""
    out = collections.OrderedDict()
    for key, tensor in state.items():
        name = key[len(strip_prefix):] if strip_prefix and key.startswith(strip_prefix) else key
        if name.endswith("num_batches_tracked"):
            continue
        m = OLD_DENSENET_KEY.match(name)
        if m:
            name = m.group(1) + m.group(2)
        if not tensor.is_floating_point():
            raise ImportFailure(f"{path}: tensor '{key}' holds {tensor.dtype}, not floating-point values")
        if "/" in name or not name:
            raise ImportFailure(f"{path}: tensor name '{key}' cannot be an HDF5 dataset name")
        if name in out:
            raise ImportFailure(f"{path}: two tensors become '{name}' (old- and new-style DenseNet keys mixed?)")
        # float64 so that folding sums exactly before the one rounding to float32.
        out[name] = tensor.detach().to(torch.float64).numpy()
    return out


def fold_first_conv(tensors):
    """Sums the first convolution's weights over a 3-channel input axis.

    The first 4-D tensor of a state dict is the stem convolution (modules
    register in forward order: conv1.weight, features.conv0.weight). Returns
    a description of what was folded, or None.
    """
    for name, w in tensors.items():
        if w.ndim != 4:
            continue
        if w.shape[1] != 3:
            return None
        tensors[name] = w.sum(axis=1, keepdims=True)
        return f"{name} {list(w.shape)} -> {list(tensors[name].shape)} (summed over the RGB input channels)"
    return None


def is_head(name, head_names):
    """A tensor of one of the head modules (fc.weight, classifier.6.bias)."""
    return any(name.startswith(h + ".") for h in head_names)


def _crc_attrs(crc, obj, skip=None):
    """Attribute names (with NUL) and stored bytes, in name order."""
    for name in sorted(obj.attrs.keys(), key=lambda s: s.encode()):
        if name == skip:
            continue
        crc = zlib.crc32(name.encode() + b"\0", crc)
        dtype = obj.attrs.get_id(name).dtype
        value = obj.attrs[name]
        info = h5py.check_string_dtype(dtype)
        if info is not None and info.length is None:
            # Variable-length string: its bytes and NUL, as the C code reads it.
            text = value if isinstance(value, str) else value.decode(info.encoding)
            crc = zlib.crc32(text.encode() + b"\0", crc)
        elif info is None and dtype.kind in "iuf":
            crc = zlib.crc32(np.asarray(value, dtype=dtype).tobytes(), crc)
        else:
            raise ImportFailure(f"attribute '{name}' of {obj.name} has a type the checksum does not cover")
    return crc


def _crc_group(crc, group, path):
    """A group and, in name order and depth first, everything below it."""
    crc = _crc_attrs(crc, group, skip=CRC_ATTR if path == "/" else None)
    for name in sorted(group.keys(), key=lambda s: s.encode()):
        child = path + name if path == "/" else path + "/" + name
        crc = zlib.crc32(child.encode() + b"\0", crc)
        obj = group[name]
        if isinstance(obj, h5py.Group):
            crc = _crc_group(crc, obj, child)
            continue
        own = zlib.crc32(np.ascontiguousarray(obj[()], dtype=obj.dtype).tobytes())
        if obj.attrs.get(CRC_ATTR) != own:
            raise ImportFailure(f"{child}: its crc32 attribute does not match its data")
        # Shape as uint64 [ndims, dims...] and the CRC as uint32, in the byte
        # order of the little-endian machines Thorax runs on.
        crc = zlib.crc32(struct.pack(f"<{1 + obj.ndim}Q", obj.ndim, *obj.shape), crc)
        crc = zlib.crc32(struct.pack("<I", own), crc)
        crc = _crc_attrs(crc, obj)
    return crc


def checkpoint_crc(f):
    """The root CRC-32 of an open file, as digest_file in checkpoint.c computes it."""
    return _crc_group(0, f, "/")


def write_checkpoint(out, tensors, source):
    """Writes the tensors as OUT.h5 atomically: OUT.h5.tmp, fsync, rename."""
    tmp = out + ".tmp"
    try:
        with h5py.File(tmp, "w") as f:
            params = f.create_group("params")
            for name, value in tensors.items():
                data = np.ascontiguousarray(value, dtype="<f4")
                ds = params.create_dataset(name, data=data)
                ds.attrs.create(CRC_ATTR, zlib.crc32(data.tobytes()), dtype="<u4")
            f.attrs["imported_from"] = source
            f.attrs.create(CRC_ATTR, checkpoint_crc(f), dtype="<u4")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as e:
        raise ImportFailure(f"writing {out} failed: {e}") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def shape_text(a):
    return "x".join(str(d) for d in a.shape) or "scalar"


def main():
    p = argparse.ArgumentParser(
        description="Import PyTorch weights (a torchvision state dict) as a Thorax checkpoint "
        "for model.init: drops num_batches_tracked, folds an RGB first convolution to gray, "
        "leaves the classifier head out.",
        epilog="example: tools/import-torch.py resnet18.pth resnet18.h5, then `model: {init: resnet18.h5}` "
        "in a config built from configs/resnet18.yaml",
    )
    p.add_argument("input", metavar="IN.pth", help="torch.save'd state dict or nn.Module")
    p.add_argument("output", metavar="OUT.h5", help="Thorax checkpoint to write")
    p.add_argument("--keep-head", action="store_true", help="keep the classifier head's tensors too")
    p.add_argument(
        "--head-names",
        default="fc,classifier",
        metavar="A,B",
        help="modules that form the classifier head (default: fc,classifier)",
    )
    p.add_argument(
        "--strip-prefix",
        default="",
        metavar="P",
        help="remove P from the start of every name (e.g. 'module.' of nn.DataParallel checkpoints)",
    )
    args = p.parse_args()
    head_names = [h for h in args.head_names.split(",") if h]

    try:
        tensors = thorax_tensors(args.input, load_state_dict(args.input), args.strip_prefix)
        folded = fold_first_conv(tensors)
        if folded:
            print(f"folded {folded}")
        if not args.keep_head:
            head = [n for n in tensors if is_head(n, head_names)]
            for n in head:
                print(f"left out head tensor {n} [{shape_text(tensors[n])}] (--keep-head keeps it)")
                del tensors[n]
        if not tensors:
            raise ImportFailure(f"{args.input}: nothing left to import once the head is left out")
        write_checkpoint(args.output, tensors, os.path.abspath(args.input))
    except ImportFailure as e:
        print(f"import-torch: {e}", file=sys.stderr)
        return 1
    count = sum(t.size for t in tensors.values())
    print(f"wrote {args.output}: {len(tensors)} tensors, {count} values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
