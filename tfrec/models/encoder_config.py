"""Keras `get_config` / `from_config` for models built as `Model(encoder, config_dataclass, **kwargs)`.

The CTR model and the DCN ranker both rebuild from their FeatureEncoder's config plus their own config dataclass;
this mixin is that code once. A model adds constructor arguments of its own by extending `get_config`.
"""

from __future__ import annotations

import dataclasses

from tfrec.features.encoder import FeatureEncoder


class EncoderConfigMixin:
    """Serialises `self.encoder`, the dataclass `self.config` (of type `config_class`) and the model's name."""

    config_class: type

    def get_config(self):
        return {"config": dataclasses.asdict(self.config), "encoder": self.encoder.get_config(), "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = FeatureEncoder.from_config(config.pop("encoder"))
        return cls(encoder, cls.config_class(**config.pop("config")), **config)
