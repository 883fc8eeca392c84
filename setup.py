"""tfrec: TensorFlow (tf-keras) library and TF Serving deployment for e-commerce search and recommendation."""

import importlib.util
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# The tf-keras (Keras 2) world: tensorflow-recommenders 0.7.x needs tf-keras; keras-tuner 1.4.x rejects tf-keras
# models, 1.3.5 accepts them; transformers 5 dropped TensorFlow, so TFBertModel needs 4.57+ and <5.
INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "tf-keras>=2.21,<2.22",
    "tensorboard>=2.20",
    "tensorflow-recommenders>=0.7.3,<0.8",
    "keras-tuner[bayesian]==1.3.5",  # bayesian: scipy + scikit-learn for BayesianOptimization
    "transformers>=4.57,<5",
    "tensorflow-text>=2.21,<2.22",
    "tensorflow-serving-api>=2.21,<2.22",
    "prometheus-client>=0.17",  # tfrec serve's metrics endpoint
    "safetensors>=0.4",
    "numpy>=1.26",
    "pyyaml>=6.0",
    "tqdm>=4.60",
    "tantivy>=0.22",
    "faiss-cpu>=1.8",
    "grpcio>=1.60",
    "grpcio-tools>=1.60",  # generates tfrec.server.protos from serving/protos (build time, or first import in a checkout)
    "matplotlib>=3.7",  # A/B report plots (tfrec ab report --plot)
    "redis>=5",  # the Redis user-state store (tfrec.online.redis_state)
]


class BuildPyWithProtos(build_py):
    """build_py that first generates tfrec.server.protos' gRPC modules from serving/protos/*.proto (grpcio-tools)."""

    def run(self):
        path = Path(__file__).resolve().parent / "tfrec" / "server" / "protos" / "_generate.py"
        spec = importlib.util.spec_from_file_location("_tfrec_proto_generate", path)
        generate = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(generate)  # loaded by path: tfrec itself is not importable yet
        generate.ensure_generated()  # from serving/protos (or, without them, checks generated modules are present)
        super().run()


setup(
    name="tfrec",
    version="0.1.0",
    description=__doc__,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tfrec", "tfrec.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "parquet": ["pyarrow>=14"],
        "dev": ["pytest>=8", "pytest-xdist>=3.6", "pyarrow>=14"],
    },
    entry_points={"console_scripts": ["tfrec=tfrec.cli.main:main"]},
    cmdclass={"build_py": BuildPyWithProtos},
)
