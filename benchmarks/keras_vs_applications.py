"""Generated Keras models vs keras.applications: inference time on a fixed batch.

    python benchmarks/keras_vs_applications.py

Pairs: architectures/resnet50_v2.net vs keras.applications.ResNet50V2, xception.net vs
Xception, mobilenet.net vs MobileNet (all with weights=None and
classifier_activation=None: the .net files end in logits). The reference's weights
are copied into the generated model layer by layer (both models' weighted layers in
the same canonical graph order, netdsl.weights' order) and the outputs compared, so
both compute the same function. Each model runs through its compiled predict function
(`predict_on_batch`, a tf.function on the TensorFlow backend) on the same batch,
interleaved in one process after warm-up, with the thread pools fixed; the figure is
the median of the per-pair ratios of wall time and of CPU time (all the process' threads:
it leaves out waiting for a core that other work holds), and the ratio of the best wall
times, each median with its 95% bootstrap interval (how far it could move were the
pairs drawn again). A control row times one reference against a clone of itself: the
noise floor.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, fmt_ci, median, print_header, table, versions  # noqa: E402

PAIRS = {
    "resnet50_v2": (ROOT / "architectures/resnet50_v2.net", "ResNet50V2", (224, 224, 3)),
    "xception": (ROOT / "architectures/xception.net", "Xception", (299, 299, 3)),
    "mobilenet": (ROOT / "architectures/mobilenet.net", "MobileNet", (224, 224, 3)),
}


def copy_weights(source, target) -> int:
    """Copy `source`'s weights into `target`, weighted layers paired in graph order."""
    from netdsl.weights import _keras_weighted_layers

    theirs, ours = _keras_weighted_layers(source), _keras_weighted_layers(target)
    if len(theirs) != len(ours):
        raise ValueError(f"{len(theirs)} weighted layers in the reference, {len(ours)} here")
    for a, b in zip(theirs, ours):
        wa, wb = a.get_weights(), b.get_weights()
        if type(a).__name__ != type(b).__name__ or [w.shape for w in wa] != [w.shape for w in wb]:
            raise ValueError(
                f"{a.name} ({type(a).__name__}) does not pair with {b.name} ({type(b).__name__})"
            )
        b.set_weights(wa)
    return len(ours)


def layer_census(model) -> str:
    from collections import Counter

    counts = Counter(type(layer).__name__ for layer in model.layers)
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def compare(gen, ref, x, reps: int, warmup: int) -> dict:
    """Interleaved predict calls (gen, ref, then ref, gen, ...) after warm-up."""
    models = {"gen": gen, "ref": ref}
    for _ in range(warmup):
        gen.predict_on_batch(x), ref.predict_on_batch(x)
    out = {"gen": [], "ref": [], "ratios": [], "cpu_ratios": []}
    for r in range(reps):
        got, cpu = {}, {}
        for key in ("gen", "ref") if r % 2 == 0 else ("ref", "gen"):
            start, start_cpu = time.perf_counter(), time.process_time()
            models[key].predict_on_batch(x)
            got[key] = time.perf_counter() - start
            cpu[key] = time.process_time() - start_cpu
            out[key].append(got[key])
        out["ratios"].append(got["gen"] / got["ref"])
        out["cpu_ratios"].append(cpu["gen"] / cpu["ref"])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(PAIRS), help="comma-separated")
    parser.add_argument(
        "--threads", type=int, default=1, help="TensorFlow intra- and inter-op threads"
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--small-batch", type=int, default=1, help="an extra row (0: none)")
    parser.add_argument("--reps", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--control",
        default="resnet50_v2",
        help="also time this reference against a clone of itself (same "
        "weights): the noise floor of the ratio ('': none)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the raw samples here")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    import numpy as np

    import netdsl

    print_header(
        "Generated Keras vs keras.applications",
        {
            **versions("keras", "tensorflow", "numpy"),
            "keras backend": keras.backend.backend(),
            "threads (intra/inter op)": args.threads,
            "reps (interleaved)": args.reps,
            "warm-up calls": args.warmup,
        },
    )
    rows, raw, structure = [], {}, []
    rng = np.random.default_rng(0)
    for name in args.models.split(","):
        path, app, shape = PAIRS[name]
        ref = getattr(keras.applications, app)(
            weights=None, classifier_activation=None, input_shape=shape
        )
        gen = netdsl.load(str(path)).to_keras()
        paired = copy_weights(ref, gen)
        probe = rng.standard_normal((2, *shape)).astype("float32")
        diff = float(np.abs(gen.predict_on_batch(probe) - ref.predict_on_batch(probe)).max())
        structure.append(
            [name, len(gen.layers), layer_census(gen), len(ref.layers), layer_census(ref)]
        )
        pairs = [(name, gen)]
        if name == args.control:
            clone = keras.models.clone_model(ref)
            clone.set_weights(ref.get_weights())
            pairs.append((f"{name} (control: {app} vs a clone of itself)", clone))
        for batch in [args.batch] + ([args.small_batch] if args.small_batch else []):
            x = rng.standard_normal((batch, *shape)).astype("float32")
            for label, model in pairs:
                result = compare(model, ref, x, args.reps, args.warmup)
                raw[f"{label}/{batch}"] = result
                ratios, cpu = result["ratios"], result["cpu_ratios"]
                ratios_ci, cpu_ci = fmt_ci(ratios), fmt_ci(cpu)  # 4,000 resamples each
                best = min(result["gen"]) / min(result["ref"])
                rows.append(
                    [
                        label,
                        f"keras.applications.{app}",
                        batch,
                        f"{median(result['gen']) * 1e3:.1f}",
                        f"{median(result['ref']) * 1e3:.1f}",
                        f"**{median(ratios):.3f}**",
                        ratios_ci,
                        f"{best:.3f}",
                        f"**{median(cpu):.3f}**",
                        cpu_ci,
                        f"{diff:.1e}" if batch == args.batch else "",
                        f"{paired}" if batch == args.batch else "",
                    ]
                )
                print(
                    f"{label} b={batch}: ratio {median(ratios):.3f} "
                    f"(95% interval {ratios_ci}), of best times {best:.3f}; CPU time "
                    f"{median(cpu):.3f} ({cpu_ci})",
                    file=sys.stderr,
                    flush=True,
                )
        del gen, ref, pairs
        keras.backend.clear_session()
    print(
        table(
            [
                "model",
                "reference",
                "batch",
                "netdsl ms (median)",
                "reference ms (median)",
                "ratio netdsl/reference (median of pairs)",
                "ratio: 95% interval of the median",
                "ratio of best times",
                "CPU-time ratio (median of pairs)",
                "CPU-time ratio: 95% interval",
                "max abs output diff (same weights)",
                "weighted layers paired",
            ],
            rows,
        )
    )
    print()
    print(table(["model", "netdsl layers", "by type", "reference layers", "by type"], structure))
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
