"""The deployment files in serving/ parse as what the servers read, and agree with each other.

- models.config, batching_parameters.txt and monitoring.config parse with TF Serving's protos (text_format) and
  with tfrec.server.config, and hold the models, policies and labels the project serves;
- docker-compose.yml and the Kubernetes manifests (k8s/*.yaml through serving/kustomization.yaml) give
  tensorflow_model_server the same flags, every file flag names a file of serving/ at the same container path
  (/config/<file>), every base_path lies under the mounted /models, and ports agree between the flags, the
  compose port mappings, the containers and the Services;
- the tfrec-serve compose service passes the same flags wherever `tfrec serve` has them, and they parse with its
  own argument parser into the same model config and batching options.

Renaming or moving a config file without updating the flags, mounts and ConfigMap fails here.
"""

import argparse
import os
import posixpath
import re
from pathlib import Path

import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from tensorflow_serving.config import model_server_config_pb2

SERVING = Path(__file__).resolve().parents[2] / "serving"
CONFIG_DIR = "/config"  # where compose and k8s mount serving/'s config files
MODELS_DIR = "/models"
CONFIG_FILES = {"models.config", "batching_parameters.txt", "monitoring.config"}
MODELS = {"ctr", "ranker", "retrieval", "retrieval_query_tower", "retrieval_candidate_tower", "intent"}
CANARY_MODELS = {"ctr", "ranker"}
FILE_FLAGS = {"model_config_file": "models.config", "batching_parameters_file": "batching_parameters.txt",
              "monitoring_config_file": "monitoring.config"}
# tensorflow_model_server flags that `tfrec serve` does not take (see the comments in docker-compose.yml).
TFSERVING_ONLY = {"rest_api_port", "monitoring_config_file", "model_config_file_poll_wait_seconds",
                  "allow_version_labels_for_unavailable_models", "tensorflow_intra_op_parallelism",
                  "tensorflow_inter_op_parallelism"}
TFREC_ONLY = {"host", "monitoring_port"}
METRICS_PATH = "/monitoring/prometheus/metrics"


# -- helpers ---------------------------------------------------------------------------------------------------------
def monitoring_config_class():
    """tensorflow.serving.MonitoringConfig. tensorflow-serving-api does not ship monitoring_config_pb2 (as it does
    not ship session_bundle_config_pb2, see tfrec.server.config), so unless a future release does, the message is
    declared here exactly as tensorflow_serving/config/monitoring_config.proto has it (package, names, numbers)."""
    try:
        from tensorflow_serving.config import monitoring_config_pb2  # type: ignore

        return monitoring_config_pb2.MonitoringConfig
    except ImportError:
        pass
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="tensorflow_serving/config/monitoring_config.proto",
                                               package="tensorflow.serving", syntax="proto3")
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=f.TYPE_BOOL, label=f.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    proto.message_type.add(name="MonitoringConfig").field.add(
        name="prometheus_config", number=1, type=f.TYPE_MESSAGE, label=f.LABEL_OPTIONAL,
        type_name=".tensorflow.serving.PrometheusConfig")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


def read(name: str) -> str:
    path = SERVING / name
    assert path.is_file(), f"serving/{name} is missing"
    return path.read_text(encoding="utf-8")


def flags(argv) -> dict:
    """{name: value} of `--name=value` / `--name` (value None) arguments; each flag at most once."""
    out = {}
    for arg in argv:
        assert arg.startswith("--"), f"not a --flag: {arg!r}"
        name, sep, value = arg[2:].partition("=")
        assert name not in out, f"--{name} given twice"
        out[name] = value if sep else None
    return out


def compose() -> dict:
    return yaml.safe_load(read("docker-compose.yml"))


def k8s_objects() -> dict:
    """{(kind, name): object} of every manifest kustomization.yaml lists."""
    objects = {}
    for resource in yaml.safe_load(read("kustomization.yaml"))["resources"]:
        for doc in yaml.safe_load_all(read(resource)):
            if doc:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in objects, f"{key} defined twice"
                objects[key] = doc
    return objects


def deployment_container() -> dict:
    (container,) = k8s_objects()[("Deployment", "tfrec-serving")]["spec"]["template"]["spec"]["containers"]
    return container


def compose_mounts(service: dict) -> dict:
    """{container path: host path} of a compose service's short-syntax volumes (host paths resolved from serving/)."""
    mounts = {}
    for volume in service["volumes"]:
        source, target, *mode = volume.split(":")
        assert mode == ["ro"], f"{volume}: mount read-only"
        mounts[target] = (SERVING / source).resolve()
    return mounts


def host_file(container_path: str, mounts: dict) -> Path:
    """The host file a container path refers to through the mounts (the longest matching mount target)."""
    for target in sorted(mounts, key=len, reverse=True):
        if container_path.startswith(target.rstrip("/") + "/"):
            return mounts[target] / posixpath.relpath(container_path, target)
    raise AssertionError(f"{container_path} is not under any mount ({sorted(mounts)})")


def models_config() -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(read("models.config"), model_server_config_pb2.ModelServerConfig())


def tfserving_flags() -> dict:
    service = compose()["services"]["tfserving"]
    assert service["entrypoint"] == ["tensorflow_model_server"]
    return flags(service["command"])


def tfrec_parser():
    from tfrec.cli import serve

    parser = argparse.ArgumentParser(prog="tfrec")
    serve.register(parser.add_subparsers())
    return parser


# -- the config files ------------------------------------------------------------------------------------------------
def test_models_config_lists_every_model_with_policies_and_labels():
    config = models_config()
    models = {m.name: m for m in config.model_config_list.config}
    assert set(models) == MODELS and len(models) == len(config.model_config_list.config)
    for name, model in models.items():
        assert model.base_path == f"{MODELS_DIR}/{name}"
        assert model.model_platform == "tensorflow"
        assert model.model_version_policy.WhichOneof("policy_choice") is not None, f"{name}: no version policy"
    for name in CANARY_MODELS:
        model = models[name]
        assert model.model_version_policy.latest.num_versions == 2
        labels = dict(model.version_labels)
        assert set(labels) == {"stable", "canary"}
        assert labels["canary"] >= labels["stable"] >= 1
        assert labels["canary"] - labels["stable"] < 2, f"{name}: latest 2 cannot hold both labelled versions"
    for name in set(models) - CANARY_MODELS:
        assert not models[name].version_labels, f"{name}: labels without a canary policy"
    # the towers' embeddings are only comparable within one training run: pinned to the same version
    towers = [models[f"retrieval_{t}_tower"].model_version_policy for t in ("query", "candidate")]
    assert all(p.WhichOneof("policy_choice") == "specific" for p in towers)
    assert list(towers[0].specific.versions) == list(towers[1].specific.versions)


def test_models_config_loads_through_tfrec():
    from tfrec.server.config import load_model_server_config

    assert load_model_server_config(str(SERVING / "models.config")) == models_config()


def test_batching_parameters_parse_and_fit_the_cpu_limits():
    from tfrec.server.config import BatchingParameters, load_batching_parameters

    params = text_format.Parse(read("batching_parameters.txt"), BatchingParameters())
    for field in ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches"):
        assert params.HasField(field), f"batching_parameters.txt: {field} unset (the default is not for CPU)"
    assert not params.pad_variable_length_inputs
    options = load_batching_parameters(str(SERVING / "batching_parameters.txt"))
    assert options.max_batch_size == params.max_batch_size.value == options.allowed_batch_sizes[-1]
    assert options.allowed_batch_sizes[0] == 1, "a lone single-row request must not be padded"
    assert 0 < options.batch_timeout_micros <= 10_000
    # one batch thread per CPU of the container/pod, and TensorFlow's op pools sized alike
    cpus = int(compose()["services"]["tfserving"]["deploy"]["resources"]["limits"]["cpus"])
    assert options.num_batch_threads == cpus == int(deployment_container()["resources"]["limits"]["cpu"])
    assert int(tfserving_flags()["tensorflow_intra_op_parallelism"]) == cpus


def test_monitoring_config_parses_and_matches_the_scrape_target():
    config = text_format.Parse(read("monitoring.config"), monitoring_config_class()())
    assert config.prometheus_config.enable
    assert config.prometheus_config.path == METRICS_PATH
    annotations = k8s_objects()[("Deployment", "tfrec-serving")]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == METRICS_PATH
    assert annotations["prometheus.io/port"] == tfserving_flags()["rest_api_port"]


# -- docker-compose.yml ----------------------------------------------------------------------------------------------
def test_compose_tfserving_flags_name_the_serving_files():
    service = compose()["services"]["tfserving"]
    image, tag = service["image"].rsplit(":", 1)
    assert image == "tensorflow/serving" and re.fullmatch(r"\d+\.\d+\.\d+", tag), "pin a tensorflow/serving release"
    argv = flags(service["command"])
    assert {"port": "8500", "rest_api_port": "8501", "model_config_file_poll_wait_seconds": "60",
            "file_system_poll_wait_seconds": "30", "allow_version_labels_for_unavailable_models": "true",
            "enable_batching": None}.items() <= argv.items()
    mounts = compose_mounts(service)
    assert mounts[CONFIG_DIR] == SERVING.resolve()
    for flag, name in FILE_FLAGS.items():
        assert argv[flag] == f"{CONFIG_DIR}/{name}", f"--{flag}"
        assert host_file(argv[flag], mounts).is_file(), f"--{flag}={argv[flag]} is no file of serving/"
    # the other way round: every config file of serving/ is passed to the server
    passed = {posixpath.basename(argv[f]) for f in FILE_FLAGS}
    on_disk = {p.name for p in SERVING.iterdir() if p.suffix in (".config", ".txt")}
    assert on_disk == passed == CONFIG_FILES


def test_every_base_path_is_under_the_mounted_models():
    base_paths = [m.base_path for m in models_config().model_config_list.config]
    for name in ("tfserving", "tfrec-serve"):
        mounts = compose_mounts(compose()["services"][name])
        assert mounts[MODELS_DIR] == (SERVING.parent / "models").resolve(), f"{name}: mount ../models at /models"
        for base_path in base_paths:
            assert host_file(base_path, mounts).parent == mounts[MODELS_DIR], base_path
    container = deployment_container()
    spec = k8s_objects()[("Deployment", "tfrec-serving")]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == MODELS_DIR]
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in k8s_objects()
    assert all(posixpath.dirname(p) == MODELS_DIR for p in base_paths)


def test_tfrec_service_passes_the_same_flags_to_tfrec_serve():
    from tfrec.cli import serve
    from tfrec.server.config import load_batching_parameters

    service = compose()["services"]["tfrec-serve"]
    assert service["build"]["context"] == ".."
    dockerfile = SERVING.parent / service["build"]["dockerfile"]
    assert dockerfile.is_file()
    assert 'ENTRYPOINT ["tfrec", "serve"]' in dockerfile.read_text()
    ours, theirs = flags(service["command"]), tfserving_flags()
    assert set(theirs) - set(ours) == TFSERVING_ONLY
    assert set(ours) - set(theirs) == TFREC_ONLY
    assert {k: ours[k] for k in set(ours) & set(theirs)} == {k: theirs[k] for k in set(ours) & set(theirs)}
    assert ours["host"] == "0.0.0.0", "tfrec serve listens on 127.0.0.1 unless told otherwise"
    assert ours["monitoring_port"] == theirs["rest_api_port"], "the same metrics port for both backends"
    assert compose_mounts(service) == compose_mounts(compose()["services"]["tfserving"])

    args = tfrec_parser().parse_args(["serve", *service["command"]])  # argparse exits on an unknown flag
    mounts = compose_mounts(service)
    for flag in ("model_config_file", "batching_parameters_file"):
        setattr(args, flag, str(host_file(getattr(args, flag), mounts)))
    config, options = serve.server_options(args)
    assert config == models_config()
    assert options.batching == load_batching_parameters(str(SERVING / "batching_parameters.txt"))
    assert (options.port, options.monitoring_port, options.poll_interval_s) == (8500, 8501, 30)


def test_tfrec_healthcheck_accepts_tfrec_metrics():
    """The tfrec-serve healthcheck script, run against what tfrec's metrics endpoint serves."""
    import urllib.request

    from prometheus_client import generate_latest

    from tfrec.server.metrics import ServerMetrics

    test = compose()["services"]["tfrec-serve"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert METRICS_PATH in test[3] and ":8501" in test[3]

    def run(metrics: ServerMetrics) -> int:
        class Response:
            def read(self):
                return generate_latest(metrics.registry)

        original = urllib.request.urlopen
        urllib.request.urlopen = lambda url, timeout=None: Response()
        try:
            exec(compile(test[3], "healthcheck", "exec"), {})
        except SystemExit as exc:
            return exc.code
        finally:
            urllib.request.urlopen = original
        raise AssertionError("the healthcheck did not exit")

    metrics = ServerMetrics()
    metrics.model_load("intent", 1, True, 0.1)
    metrics.model_load("ctr", 2, False, 0.1)
    assert run(metrics) == 1
    metrics.model_load("ctr", 1, True, 0.1)
    assert run(metrics) == 0


# -- Kubernetes --------------------------------------------------------------------------------------------------------
def test_kustomization_lists_every_manifest_and_generates_the_configmap():
    kustomization = yaml.safe_load(read("kustomization.yaml"))
    listed = set(kustomization["resources"])
    assert listed == {f"k8s/{p.name}" for p in (SERVING / "k8s").glob("*.yaml")}
    (generator,) = kustomization["configMapGenerator"]
    assert set(generator["files"]) == CONFIG_FILES
    for name in generator["files"]:
        assert (SERVING / name).is_file()
    spec = k8s_objects()[("Deployment", "tfrec-serving")]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (mount,) = [m for m in deployment_container()["volumeMounts"] if m["mountPath"] == CONFIG_DIR]
    assert mount.get("readOnly") and "subPath" not in mount, "mount the whole ConfigMap: subPath never updates"
    assert volumes[mount["name"]]["configMap"]["name"] == generator["name"]
    assert kustomization["generatorOptions"]["disableNameSuffixHash"] is True


def test_k8s_deployment_runs_the_compose_server_with_the_same_flags():
    container = deployment_container()
    service = compose()["services"]["tfserving"]
    assert container["image"] == service["image"]
    assert container["command"] == service["entrypoint"]
    assert container["args"] == service["command"]
    argv = flags(container["args"])
    for flag, name in FILE_FLAGS.items():  # the ConfigMap's keys are the file names, mounted at /config
        assert argv[flag] == f"{CONFIG_DIR}/{name}"
    deployment = k8s_objects()[("Deployment", "tfrec-serving")]
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = k8s_objects()[("HorizontalPodAutoscaler", "tfrec-serving")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tfrec-serving"}
    assert hpa["minReplicas"] == deployment["spec"]["replicas"] < hpa["maxReplicas"]


def test_ports_agree_between_flags_compose_containers_and_services():
    argv = tfserving_flags()
    grpc, rest = int(argv["port"]), int(argv["rest_api_port"])
    published = dict(reversed(p.split(":")) for p in compose()["services"]["tfserving"]["ports"])
    assert {int(c): int(h) for c, h in published.items()} == {grpc: grpc, rest: rest}
    ours = flags(compose()["services"]["tfrec-serve"]["command"])
    tfrec_ports = {int(p.split(":")[1]) for p in compose()["services"]["tfrec-serve"]["ports"]}
    assert tfrec_ports == {int(ours["port"]), int(ours["monitoring_port"])} == {grpc, rest}

    container = deployment_container()
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named == {"grpc": grpc, "http": rest}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        action = container[probe].get("httpGet") or container[probe].get("tcpSocket")
        assert action["port"] in named, f"{probe} probes an undeclared port"
    models = {m.name for m in models_config().model_config_list.config}
    for probe in ("startupProbe", "readinessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert container[probe]["httpGet"]["port"] == "http"
        assert re.fullmatch(r"/v1/models/(\w+)", path) and path.rsplit("/", 1)[1] in models
    healthcheck = " ".join(compose()["services"]["tfserving"]["healthcheck"]["test"])
    assert f"/dev/tcp/127.0.0.1/{rest}" in healthcheck and container["readinessProbe"]["httpGet"]["path"] in healthcheck

    services = [o for (kind, _), o in k8s_objects().items() if kind == "Service"]
    assert services
    selector = k8s_objects()[("Deployment", "tfrec-serving")]["spec"]["selector"]["matchLabels"]
    for svc in services:
        assert svc["spec"]["selector"] == selector
        for port in svc["spec"]["ports"]:
            assert named[port["targetPort"]] == port["port"], f"{svc['metadata']['name']}: {port['name']}"
    main = k8s_objects()[("Service", "tfrec-serving")]
    assert {p["name"]: p["port"] for p in main["spec"]["ports"]} == {"grpc": grpc, "http": rest}


def test_readme_describes_every_file():
    readme = read("README.md")
    files = CONFIG_FILES | {"docker-compose.yml", "kustomization.yaml", "Dockerfile.tfrec"}
    files |= {f"k8s/{p.name}" for p in (SERVING / "k8s").glob("*.yaml")}
    missing = sorted(f for f in files if f not in readme)
    assert not missing, f"serving/README.md does not mention {missing}"
