"""`tfrec export --run DIR --base-dir DIR`: writes a trained run as a TF Serving SavedModel version."""

from __future__ import annotations


def register(commands) -> None:
    ex = commands.add_parser(
        "export",
        help="export a trained run as a SavedModel",
        description="Rebuilds the model of a run from its config, fitted features and best checkpoint and writes "
        "<base-dir>/<name>/<version>/ with serving_default (raw features) and serving_examples (tf.Example) "
        "signatures.",
    )
    ex.add_argument("--run", required=True, help="run directory written by `tfrec train`")
    ex.add_argument("--base-dir", required=True, help="model base path (TF Serving's model_base_path parent)")
    ex.add_argument("--name", default="ctr", help="model name (directory under base-dir)")
    ex.add_argument("--version", type=int, help="version number (default: newest existing + 1)")
    ex.add_argument("--overwrite", action="store_true", help="replace the version if it exists")
    ex.set_defaults(handler=run_export)


def run_export(args) -> int:
    import json
    import os

    from tfrec.export.ctr import export_ctr
    from tfrec.training.ctr_job import restore_ctr_run

    _, _, model = restore_ctr_run(args.run)
    metrics_path = os.path.join(args.run, "metrics.json")
    info = {"run_dir": os.path.abspath(args.run)}
    if os.path.exists(metrics_path):
        with open(metrics_path, encoding="utf-8") as f:
            info["metrics"] = {k: v for k, v in json.load(f)["test"].items() if k != "calibration"}
    path = export_ctr(model, args.base_dir, args.name, args.version, info, args.overwrite)
    print(f"exported {path}")
    return 0
