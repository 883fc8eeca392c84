"""TF Serving's config files: `models.config` (a text `ModelServerConfig`) and `batching_parameters.txt` (a text
`BatchingParameters`), parsed with protobuf's text_format and checked, with errors that name the file and the problem.

`tensorflow-serving-api` ships `model_server_config_pb2` but not `session_bundle_config_pb2`, so `BatchingParameters`
is declared here with the same package, message and field names (text format only uses the names). Fields 1-7 are
TF Serving's (session_bundle_config.proto); the two large-batch-splitting fields newer servers accept are parsed and
ignored, as is `pad_variable_length_inputs` (requests whose non-batch dimensions differ are simply not merged).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Optional, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

log = logging.getLogger(__name__)

ModelServerConfig = model_server_config_pb2.ModelServerConfig


class ConfigError(ValueError):
    """A config file (or ReloadConfigRequest) that cannot be served: the message names the source and the problem."""


def _batching_parameters_class():
    try:  # a future tensorflow-serving-api may ship it
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2  # type: ignore

        return session_bundle_config_pb2.BatchingParameters
    except ImportError:
        pass
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="tfrec/server/session_bundle_config.proto", package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"])
    message = proto.message_type.add(name="BatchingParameters")
    fields = [("max_batch_size", 1, "Int64Value"), ("batch_timeout_micros", 2, "Int64Value"),
              ("max_enqueued_batches", 3, "Int64Value"), ("num_batch_threads", 4, "Int64Value"),
              ("thread_pool_name", 5, "StringValue"), ("allowed_batch_sizes", 6, None),
              ("pad_variable_length_inputs", 7, None), ("enable_large_batch_splitting", 8, "BoolValue"),
              ("max_execution_batch_size", 9, "Int64Value")]
    for name, number, wrapper in fields:
        field = message.field.add(name=name, number=number, label=f.LABEL_OPTIONAL)
        if wrapper:
            field.type, field.type_name = f.TYPE_MESSAGE, f".google.protobuf.{wrapper}"
        elif name == "allowed_batch_sizes":
            field.type, field.label = f.TYPE_INT64, f.LABEL_REPEATED
        else:
            field.type = f.TYPE_BOOL
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()


def _read(path: str) -> str:
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        return f.read()


def _parse(text: str, message, source: str):
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise ConfigError(f"{source}: not a valid text {message.DESCRIPTOR.name}: {exc}") from None


def check_model_server_config(config: ModelServerConfig, source: str) -> ModelServerConfig:
    """Raises ConfigError unless `config` is a model_config_list this server can serve (unique names, base paths,
    TensorFlow platform, sane version policies and labels); returns it."""
    kind = config.WhichOneof("config")
    if kind == "custom_model_config":
        raise ConfigError(f"{source}: custom_model_config is not supported; use model_config_list")
    names = set()
    for i, model in enumerate(config.model_config_list.config):
        where = f"{source}: model_config_list.config[{i}]" + (f" ({model.name!r})" if model.name else "")
        if not model.name:
            raise ConfigError(f"{where}: name is empty")
        if model.name in names:
            raise ConfigError(f"{where}: model name {model.name!r} appears twice")
        names.add(model.name)
        if not model.base_path:
            raise ConfigError(f"{where}: base_path is empty")
        if model.model_platform not in ("", "tensorflow"):
            raise ConfigError(f"{where}: model_platform {model.model_platform!r} is not supported (only 'tensorflow')")
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific" and not policy.specific.versions:
            raise ConfigError(f"{where}: model_version_policy.specific lists no versions")
        if any(v < 1 for v in policy.specific.versions):
            raise ConfigError(f"{where}: model_version_policy.specific versions must be positive integers")
        for label, version in model.version_labels.items():
            if not label:
                raise ConfigError(f"{where}: a version label is empty")
            if version < 1:
                raise ConfigError(f"{where}: version label {label!r} points to version {version}; versions are >= 1")
    return config


def parse_model_server_config(text: str, source: str = "<models.config>") -> ModelServerConfig:
    """A ModelServerConfig from its text form, checked (see check_model_server_config)."""
    return check_model_server_config(_parse(text, ModelServerConfig(), source), source)


def load_model_server_config(path: str) -> ModelServerConfig:
    """TF Serving's `--model_config_file`, parsed and checked."""
    return parse_model_server_config(_read(path), path)


def single_model_config(name: str, base_path: str) -> ModelServerConfig:
    """The config TF Serving builds from `--model_name` and `--model_base_path` (latest version only)."""
    config = ModelServerConfig()
    config.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
    return check_model_server_config(config, "--model_name/--model_base_path")


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """Resolved batching knobs, with TF Serving's defaults (BasicBatchScheduler::Options) for unset fields.

    A batch runs when it holds `max_batch_size` rows, or when its oldest request has waited `batch_timeout_micros`
    and one of `num_batch_threads` is free; a request that would open a new batch while `max_enqueued_batches`
    batches wait gets RESOURCE_EXHAUSTED. With `allowed_batch_sizes`, a batch is padded up to the next allowed size.
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: Tuple[int, ...] = ()

    def __post_init__(self):
        check_batching_options(self, "BatchingOptions")


def check_batching_options(options: BatchingOptions, source: str) -> BatchingOptions:
    """Raises ConfigError for values TF Serving rejects."""
    for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
        if getattr(options, name) < 1:
            raise ConfigError(f"{source}: {name} must be >= 1, got {getattr(options, name)}")
    if options.batch_timeout_micros < 0:
        raise ConfigError(f"{source}: batch_timeout_micros must be >= 0, got {options.batch_timeout_micros}")
    sizes = list(options.allowed_batch_sizes)
    if sizes:
        if any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] < 1:
            raise ConfigError(f"{source}: allowed_batch_sizes must be positive and increasing, got {sizes}")
        if sizes[-1] != options.max_batch_size:
            raise ConfigError(f"{source}: the last allowed_batch_sizes entry ({sizes[-1]}) must equal max_batch_size "
                              f"({options.max_batch_size})")
    return options


def batching_options(params=None, source: str = "<batching parameters>") -> BatchingOptions:
    """BatchingOptions from a BatchingParameters message (None: all defaults, as `--enable_batching` alone)."""
    params = params if params is not None else BatchingParameters()
    values = {}
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        if params.HasField(name):
            values[name] = int(getattr(params, name).value)
    values["allowed_batch_sizes"] = tuple(int(v) for v in params.allowed_batch_sizes)
    if params.pad_variable_length_inputs:
        log.warning("%s: pad_variable_length_inputs is ignored: requests whose shapes differ are not merged", source)
    try:
        return check_batching_options(BatchingOptions(**values), source)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("BatchingOptions", source)) from None


def parse_batching_parameters(text: str, source: str = "<batching_parameters>") -> BatchingOptions:
    """BatchingOptions from the text form of BatchingParameters."""
    return batching_options(_parse(text, BatchingParameters(), source), source)


def load_batching_parameters(path: Optional[str]) -> BatchingOptions:
    """TF Serving's `--batching_parameters_file`, parsed and checked (None: the defaults)."""
    return batching_options(None) if path is None else parse_batching_parameters(_read(path), path)
