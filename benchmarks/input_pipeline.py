"""Input pipeline throughput: CTR examples/s from sharded TFRecords vs from in-memory tensors, on ~1M synthetic
events (the `medium` preset), plus the TFRecord write rate and CTR training examples/s over both inputs.

    python benchmarks/input_pipeline.py [--preset medium] [--batch-size 1024]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


import tfrec  # noqa: E402,F401
from benchmarks.common import Timer, command_line, git_revision, machine, write_section  # noqa: E402


def iterate(ds) -> int:
    """Pulls every batch (parsing included) and returns the number of examples seen."""
    n = 0
    for features, labels in ds:
        n += int(next(iter(labels.values())).shape[0])
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--train-epochs", type=int, default=2, help="the last epoch is timed (the first traces)")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = parser.parse_args()

    from tfrec.data.examples import take
    from tfrec.data.splits import split_indices
    from tfrec.data.synthetic import SyntheticConfig, generate
    from tfrec.data.tfrecord import memory_dataset, tfrecord_dataset, write_tfrecords
    from tfrec.features.stats import fit_features
    from tfrec.models.ctr import build_ctr_model
    from tfrec.training.ctr_job import build_examples, load_ctr_config
    from tfrec.training.trainer import make_optimizer
    from tfrec.data.sources import LoadedData
    import tensorflow as tf

    config = load_ctr_config(os.path.join(os.path.dirname(__file__), "..", "configs", "ctr.yaml"))
    spec = config.feature_spec
    with Timer() as t_gen:
        data = generate(SyntheticConfig.preset(args.preset, seed=0))
    columns = build_examples(config, LoadedData(data.dataset, None, None))
    train_idx, _, _ = split_indices(config.split, columns["timestamp"], columns["request_id"])
    train = take({k: columns[k] for k in spec.names + ["click"]}, train_idx)
    n = len(train["click"])
    work = tempfile.mkdtemp(prefix="tfrec-bench-")
    fitted = fit_features(spec, train, os.path.join(work, "features"))
    with Timer() as t_write:
        files = write_tfrecords(train, os.path.join(work, "data"), "train", num_shards=8, processes=os.cpu_count() or 1)
    size_mb = sum(os.path.getsize(f) for f in files) / 2**20
    parse = {**spec.parse_spec(), "click": tf.io.FixedLenFeature([], tf.int64, 0)}
    dtypes = {f.name: f.tf_dtype for f in spec.features}
    bs = args.batch_size

    def from_files(cache=False):
        return tfrecord_dataset(files, parse, bs, ["click"], shuffle_buffer=100_000, seed=1, cache=cache)

    def from_memory():
        return memory_dataset(train, bs, ["click"], shuffle_buffer=100_000, seed=1, dtypes=dtypes)

    results = {}
    for name, make in (("in-memory tensors", from_memory), ("TFRecord shards", from_files)):
        ds = make()
        iterate(ds.take(5))  # warm up
        with Timer() as t:
            seen = iterate(ds)
        assert seen == n, (seen, n)
        results[name] = n / t.seconds
    cached = from_files(cache=True)
    iterate(cached)  # fills the cache
    with Timer() as t:
        iterate(cached)
    results["TFRecord shards, cached (epoch 2+)"] = n / t.seconds

    train_rates = {}
    for name, make in (("in-memory tensors", from_memory), ("TFRecord shards", from_files)):
        tf.keras.utils.set_random_seed(0)
        model = build_ctr_model(config.model, fitted)
        model.compile(optimizer=make_optimizer(config.training.optimizer))
        times = []

        class EpochTimer(tf.keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t = Timer().__enter__()

            def on_epoch_end(self, epoch, logs=None):
                self.t.__exit__()
                times.append(self.t.seconds)

        model.fit(make(), epochs=args.train_epochs, verbose=0, callbacks=[EpochTimer()])
        train_rates[name] = n / times[-1]

    base = results["in-memory tensors"]
    base_train = train_rates["in-memory tensors"]
    lines = [
        "## Input pipeline and CTR training throughput",
        "",
        f"Command: `{command_line()}` (git {git_revision()}).  ",
        f"Data: synthetic preset `{args.preset}` ({len(data.dataset.events):,} events, generated in "
        f"{t_gen.seconds:.1f} s), its {n:,} training impressions as CTR examples with the {len(spec.names)} raw "
        f"features of `configs/ctr.yaml`; batch {bs}, shuffle buffer 100,000.  ",
        f"Machine: {machine()}.",
        "",
        "| input | examples/s | ratio vs in-memory |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {v:,.0f} | {v / base:.2f} |" for k, v in results.items()]
    lines += [
        "",
        f"Writing the {n:,} examples as 8 TFRecord shards ({size_mb:.0f} MiB) took {t_write.seconds:.1f} s "
        f"({n / t_write.seconds:,.0f} examples/s, {os.cpu_count()} processes).",
        "",
        "CTR model training (`LogisticCTR`, configs/ctr.yaml features, crosses and matches; epoch "
        f"{args.train_epochs} timed, after tracing):",
        "",
        "| input | training examples/s | ratio vs in-memory |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {v:,.0f} | {v / base_train:.2f} |" for k, v in train_rates.items()]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("input_pipeline", body)


if __name__ == "__main__":
    main()
