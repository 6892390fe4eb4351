"""check_export.py - checks of an exported model (tests/integration/test_export.sh).

  check_export.py onnx MODEL.onnx LABEL...     the ONNX checker (full_check: shapes
                                               inferred), opset >= 13, `image`
                                               [N,1,H,W] in, `prob` [N,L] out, and the
                                               metadata's labels
  check_export.py torch MODEL.py IMAGES.bin N PROBS.txt
                                               runs the generated module (load()) on
                                               the images, writes its probabilities
  check_export.py compare A.txt B.txt TOL      max |a - b| over every probability
                                               <= TOL (and the same shapes)
Exits 1 with the reason on a failed check.
"""
import importlib.util
import json
import sys


def fail(msg):
    print("check_export.py: " + msg, file=sys.stderr)
    sys.exit(1)


def check_onnx(path, labels):
    import onnx
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not opset or opset[0] < 13:
        fail("%s: opset %s, expected >= 13" % (path, opset))
    g = model.graph
    inits = {t.name for t in g.initializer}
    ins = [i for i in g.input if i.name not in inits]
    if [i.name for i in ins] != ["image"] or [o.name for o in g.output] != ["prob"]:
        fail("%s: inputs %s, outputs %s" % (path, [i.name for i in ins], [o.name for o in g.output]))
    dims = lambda v: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
    din, dout = dims(ins[0]), dims(g.output[0])
    if len(din) != 4 or din[1] != 1 or not isinstance(din[0], str):
        fail("%s: image has shape %s, expected [N, 1, H, W] with a dynamic N" % (path, din))
    if dout != [din[0], len(labels)]:
        fail("%s: prob has shape %s, expected [N, %d]" % (path, dout, len(labels)))
    meta = {p.key: p.value for p in model.metadata_props}
    if json.loads(meta.get("thorax.labels", "null")) != labels:
        fail("%s: metadata labels %s, expected %s" % (path, meta.get("thorax.labels"), labels))
    for key in ("thorax.version", "thorax.run", "thorax.checkpoint", "thorax.epoch", "thorax.step",
                "thorax.normalization"):
        if not meta.get(key):
            fail("%s: no metadata %s" % (path, key))
    print("onnx ok: %s, %d nodes, opset %d, image %s -> prob %s" % (path, len(g.node), opset[0], din, dout))


def run_torch(py, images, n, out):
    import numpy as np
    import torch
    spec = importlib.util.spec_from_file_location("exported", py)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.load()
    c, h, w = mod.INPUT_SHAPE
    x = torch.from_numpy(np.fromfile(images, dtype="<f4").reshape(int(n), c, h, w))
    with torch.no_grad():
        p = model(x).numpy()
    with open(out, "w") as f:
        for row in p:
            f.write(" ".join("%.9g" % v for v in row) + "\n")


def compare(a, b, tol):
    ra = [[float(v) for v in line.split()] for line in open(a) if line.strip()]
    rb = [[float(v) for v in line.split()] for line in open(b) if line.strip()]
    if len(ra) != len(rb) or any(len(x) != len(y) for x, y in zip(ra, rb)):
        fail("%s and %s differ in shape" % (a, b))
    worst, at = 0.0, None
    for i, (x, y) in enumerate(zip(ra, rb)):
        for k, (u, v) in enumerate(zip(x, y)):
            if not abs(u - v) <= worst:
                worst, at = abs(u - v), (i, k, u, v)
    if not worst <= float(tol):
        fail("%s vs %s: image %d label %d: %.9g vs %.9g (|diff| %.3g > %s)" % (a, b, *at, worst, tol))
    lo = min(min(x) for x in ra)
    hi = max(max(x) for x in ra)
    print("%s vs %s: %d images, max |diff| %.3g <= %s (probabilities in [%.4f, %.4f])" % (a, b, len(ra), worst, tol, lo, hi))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "onnx":
        check_onnx(sys.argv[2], sys.argv[3:])
    elif cmd == "torch":
        run_torch(*sys.argv[2:6])
    elif cmd == "compare":
        compare(*sys.argv[2:5])
    else:
        fail("usage: check_export.py onnx|torch|compare ...")
