"""The DCN-V2 ranker: embeddings of every feature → cross network and/or deep tower → one head per task.

    x₀ = [e(f₁) ‖ … ‖ e(f_k) ‖ z₁ … z_j]    pooled embeddings of the token features (ids, categories, paths,
                                            text, buckets, hour/day, lexical match tokens), standardised numbers
    h  = DCNBody(x₀)                         `tfrec.layers.dcn`: stacked or parallel cross × L and MLP
    logit_t(x, p) = w_tᵀ h + b_t + Σ_f β_t,f(x_f) + g_t(p)
                                            β = first-order terms (`TokenBiases`): a weight per token of the
                                            `bias_features` (a user's and an item's offset, as in biased matrix
                                            factorisation) and per hashed bucket of the `crosses` (user × category,
                                            the memorising part the logistic CTR has); g = `PositionTower`, added
                                            for binary tasks while training only
                                            φ_t = Σ_(a,b) ⟨v_a,t(x_a), v_b,t(x_b)⟩ (`FieldInteractions`, optional):
                                            factorisation-machine terms of declared pairs (user × category, ...),
                                            added to logit_t beside β
    loss = Σ_t weight_t · loss_t            BCE for click / add_to_cart / purchase, MSE for rating (tfrs Ranking)

Serving (`call`, the export) scores with g skipped, so a score never depends on the requested display position;
`logits(..., with_position=True)` is the logged click model (what training fits and AUC on logged data measures).
`explain` attributes a head's serving logit to feature groups by integrated gradients (`ranker_explain`).
`embed` returns x₀ with the terms β appended (one column per bias feature or cross and head), so
`head_logits(embed(x))` is the whole serving logit and integrated gradients credit each β (a linear term) exactly
to its feature or cross.
Head biases b_t start at the training label's mean (rating) or log-odds (binary), so the first epochs fit the
features rather than the intercept.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Literal, Optional

import tensorflow as tf

from tfrec._tfrs import tfrs
from tfrec.config import ConfigError
from tfrec.features.encoder import SINGLE_TOKEN_KINDS, FeatureEncoder
from tfrec.features.stats import FittedFeatures
from tfrec.layers.dcn import DCNBody
from tfrec.layers.feature_embeddings import FeatureEmbeddings
from tfrec.layers.field_interactions import FieldInteractions
from tfrec.layers.hashed_linear import hashed_cross, token_fingerprints
from tfrec.layers.position_tower import PositionTower
from tfrec.layers.price_fit import PriceLimitFit
from tfrec.layers.token_biases import TokenBiases
from tfrec.layers.token_match import TokenMatch, match_name
from tfrec.models.encoder_config import EncoderConfigMixin
from tfrec.models.train_step import RecommenderModel

TASKS = {"click": "binary", "add_to_cart": "binary", "purchase": "binary", "rating": "regression"}
DERIVED_BINS = 64  # hash bins of the few distinct match / price-limit tokens
# Python loops over heads and features, no tensor-dependent control flow: AutoGraph would only slow every trace down.
_plain_tensor_code = tf.autograph.experimental.do_not_convert


def cross_name(features: List[str]) -> str:
    """The ranker's input name of a hashed cross ('user_id_x_category')."""
    return "_x_".join(features)


def derived_name(token_name: str) -> str:
    """The ranker's input name of a match / price-limit token ('query~title' → 'query__title'; '~' is not valid in
    a layer name)."""
    return token_name.replace("~", "__")


def output_name(task: str) -> str:
    """The serving output of a head: `click_probability`, `purchase_probability`, ... or `rating`."""
    return f"{task}_probability" if TASKS[task] == "binary" else task


@dataclasses.dataclass
class RankerConfig:
    """Features, trunk, heads and position-bias tower of the DCN ranker (see the module docstring)."""

    features: Optional[List[str]] = None  # None: every feature of the spec except `position_feature`
    matches: List[List[str]] = dataclasses.field(default_factory=list)  # [query, field]: lexical match tokens
    price_limit: Optional[List[str]] = None  # [query, price]: does the price respect "under 80"
    embedding_dim: int = 16
    cross_layers: int = 2  # 0: a plain DNN
    projection_dim: Optional[int] = None  # low-rank cross layers (U V, r = projection_dim); null: full rank
    structure: Literal["stacked", "parallel"] = "stacked"
    deep_units: List[int] = dataclasses.field(default_factory=lambda: [128, 64])  # []: cross network only
    dropout: float = 0.0
    l2: float = 0.0
    # First-order ("wide") terms added to every head's logit, a learned scalar per token and head: the tokens of
    # `bias_features` (a user's and an item's offset) and the hashed token pairs of `crosses` (user × category, as
    # the logistic CTR's crosses, in `cross_buckets` buckets); `bias_l2` on the weights each example looks up.
    bias_features: List[str] = dataclasses.field(default_factory=list)
    crosses: List[List[str]] = dataclasses.field(default_factory=list)
    cross_buckets: int = 1 << 20
    bias_l2: float = 0.0
    # Factorisation-machine terms added to every head's logit: ⟨v_a, v_b⟩ of per-head factor vectors of size
    # `interaction_dim` for each pair [a, b] (user × category, user × item, ...; `FieldInteractions`), sparse L2
    # `interaction_l2` on the factors each example looks up.
    interactions: List[List[str]] = dataclasses.field(default_factory=list)
    interaction_dim: int = 8
    interaction_l2: float = 0.0
    # Features that feed only the first-order and interaction terms, not the trunk's x₀ (e.g. user and item ids: a
    # deep tower over id embeddings memorises id × everything and overfits; their offsets and factors do not).
    wide_only: List[str] = dataclasses.field(default_factory=list)
    tasks: Dict[str, float] = dataclasses.field(default_factory=lambda: {"click": 1.0})  # head → loss weight
    # ESMM (Ma et al. 2018): the purchase head's own logit is P(purchase | click), and its output (and loss, on every
    # impression) is P(click) × P(purchase | click), so purchases rank at least by what predicts clicks. No effect
    # unless both heads are there (a click-only override of `tasks` keeps working).
    purchase_given_click: bool = False
    position_feature: Optional[str] = "position"  # null: no position-bias tower
    max_position: int = 20
    position_hidden: List[int] = dataclasses.field(default_factory=lambda: [8])
    # Integrated-gradients groups: group → inputs (features, match inputs such as query__title); others stand alone.
    explain_groups: Dict[str, List[str]] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if not self.tasks:
            raise ConfigError(f"name at least one head, e.g. {{click: 1.0}}; heads are {sorted(TASKS)}", path="tasks")
        for task, weight in self.tasks.items():
            if task not in TASKS:
                raise ConfigError(f"unknown head {task!r}; heads are {sorted(TASKS)}", path=f"tasks.{task}")
            if weight <= 0:
                raise ConfigError(f"loss weight must be > 0, got {weight}", path=f"tasks.{task}")
        if self.embedding_dim < 1:
            raise ConfigError(f"must be >= 1, got {self.embedding_dim}", path="embedding_dim")
        if self.cross_layers < 0:
            raise ConfigError(f"must be >= 0 (0: a plain DNN), got {self.cross_layers}", path="cross_layers")
        if self.projection_dim is not None and self.projection_dim < 1:
            raise ConfigError(f"must be >= 1 or null (full rank), got {self.projection_dim}", path="projection_dim")
        if any(u < 1 for u in self.deep_units):
            raise ConfigError(f"sizes must be >= 1, got {self.deep_units}", path="deep_units")
        if self.cross_layers == 0 and not self.deep_units:
            raise ConfigError("cross_layers 0 and no deep_units leave no network", path="cross_layers")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.dropout}", path="dropout")
        if self.l2 < 0:
            raise ConfigError(f"must be >= 0, got {self.l2}", path="l2")
        if self.bias_l2 < 0:
            raise ConfigError(f"must be >= 0, got {self.bias_l2}", path="bias_l2")
        if self.cross_buckets < 1:
            raise ConfigError(f"must be >= 1, got {self.cross_buckets}", path="cross_buckets")
        for i, pair in enumerate(self.interactions):
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ConfigError(f"{pair} must name two different features", path=f"interactions[{i}]")
        if self.interaction_dim < 1:
            raise ConfigError(f"must be >= 1, got {self.interaction_dim}", path="interaction_dim")
        if self.interaction_l2 < 0:
            raise ConfigError(f"must be >= 0, got {self.interaction_l2}", path="interaction_l2")
        stray = sorted(set(self.wide_only) - set(self.wide_features()))
        if stray:
            raise ConfigError(f"{stray} would feed nothing: list them in bias_features, crosses or interactions too",
                              path="wide_only")
        for i, cross in enumerate(self.crosses):
            if len(cross) < 2:
                raise ConfigError(f"{cross} must name at least two features", path=f"crosses[{i}]")
        if self.position_feature and self.position_feature in self.wide_features():
            raise ConfigError(f"{self.position_feature!r} feeds the position tower only (serving scores must not "
                              "depend on it)", path="bias_features")
        if self.max_position < 1 or any(h < 1 for h in self.position_hidden):
            raise ConfigError("max_position and position_hidden sizes must be >= 1", path="max_position")
        if self.position_feature and self.features and self.position_feature in self.features:
            raise ConfigError(f"{self.position_feature!r} feeds the position tower only; remove it from `features` "
                              "(serving scores must not depend on position)", path="features")
        for i, pair in enumerate(self.matches):
            if len(pair) != 2:
                raise ConfigError(f"{pair} must name two features, [query, field]", path=f"matches[{i}]")
        if self.price_limit is not None and len(self.price_limit) != 2:
            raise ConfigError(f"{self.price_limit} must name two features, [query, price]", path="price_limit")

    @property
    def binary_tasks(self) -> List[str]:
        return [t for t in self.tasks if TASKS[t] == "binary"]

    @property
    def factorised_purchase(self) -> bool:
        """`purchase_given_click` with both heads present."""
        return self.purchase_given_click and {"click", "purchase"} <= set(self.tasks)

    @property
    def position_tasks(self) -> List[str]:
        """The heads the position tower biases (under `purchase_given_click`, purchase inherits click's)."""
        return [t for t in self.binary_tasks if not (self.factorised_purchase and t == "purchase")]

    def wide_features(self) -> List[str]:
        """Every feature the first-order and interaction terms read (bias features, cross and pair members)."""
        return list(dict.fromkeys(list(self.bias_features) + [n for cross in self.crosses for n in cross]
                                  + [n for pair in self.interactions for n in pair]))

    def referenced_features(self) -> List[str]:
        """Every feature the match and price-limit tokens and the first-order terms read."""
        return [n for pair in self.matches for n in pair] + list(self.price_limit or []) + self.wide_features()

    def model_features(self, spec_names: List[str]) -> List[str]:
        """The features the trunk reads: `features`, or the spec's minus the position feature."""
        return list(self.features) if self.features else [n for n in spec_names if n != self.position_feature]


class DCNRanker(EncoderConfigMixin, RecommenderModel):
    """The multi-task DCN-V2 ranker; `call` returns the serving outputs, `logits` the heads' logits."""

    config_class = RankerConfig

    def __init__(self, encoder: FeatureEncoder, config: RankerConfig, initial_logits: Optional[Dict[str, float]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        config.validate()
        names = encoder.spec.names
        unknown = sorted(set(config.referenced_features()) - set(names))
        if unknown:
            raise ValueError(f"matches/price_limit/bias_features/crosses/interactions name features {unknown} "
                             f"that the ranker does not read ({names})")
        if config.position_feature in names:
            raise ValueError(f"the encoder reads the position feature {config.position_feature!r}; serving scores "
                             "would depend on it")
        self.config = config
        self.encoder = encoder
        spec = encoder.spec
        self.matcher = TokenMatch(config.matches, name="matches") if config.matches else None
        self.price_fit = PriceLimitFit(*config.price_limit, name="price_limit") if config.price_limit else None
        tokens = [match_name(p) for p in config.matches] + ([self.price_fit.token_name] if self.price_fit else [])
        self.derived = {t: derived_name(t) for t in tokens}  # token name → input name
        # Bucketised numbers (price) get a bucket embedding as well as their standardised value.
        token_features = {n: encoder.id_space(n) for n in names
                          if spec[n].kind != "numeric" or encoder.stats[n].boundaries}
        token_features.update({n: DERIVED_BINS for n in self.derived.values()})
        numeric = [n for n in names if spec[n].kind == "numeric"]
        inputs = set(names) | set(self.derived.values()) | {cross_name(c) for c in config.crosses}
        for group, members in config.explain_groups.items():
            unknown = sorted(set(members) - inputs)
            if unknown:
                raise ConfigError(f"names {unknown}, which are not ranker inputs {sorted(inputs)}",
                                  path=f"explain_groups.{group}")
        trunk_tokens = {n: v for n, v in token_features.items() if n not in config.wide_only}
        pooling = {n: {"mode": "mean", "max_length": spec[n].max_tokens} for n in trunk_tokens
                   if n in spec and spec[n].kind == "sequence"}
        single = [n for n in trunk_tokens if n in self.derived.values() or spec[n].kind in SINGLE_TOKEN_KINDS]
        self.embeddings = FeatureEmbeddings(trunk_tokens, numeric, config.embedding_dim, config.l2, pooling,
                                            single_token=single, name="embeddings")
        self.crosses = {cross_name(c): list(c) for c in config.crosses}  # input name → crossed features
        self.biases = None
        if config.wide_features():
            numbers = sorted(set(config.wide_features()) - set(token_features))
            if numbers:
                raise ConfigError(f"{numbers} have no tokens to weigh (numbers need buckets)", path="bias_features")
            spaces = {**{n: token_features[n] for n in config.bias_features},
                      **{n: config.cross_buckets for n in self.crosses}}
            self.biases = TokenBiases(spaces, len(config.tasks), config.bias_l2, name="biases") if spaces else None
        self.interactions = None
        if config.interactions:
            self.interactions = FieldInteractions(token_features, config.interactions, config.interaction_dim,
                                                  len(config.tasks), config.interaction_l2, name="interactions")
        self.body = DCNBody(config.cross_layers, config.projection_dim, config.deep_units, config.structure,
                            config.dropout, config.l2, name="dcn")
        # float32 heads: logits and losses stay float32 under mixed precision.
        self.initial_logits = {t: float(v) for t, v in (initial_logits or {}).items() if t in config.tasks}
        self.heads = {t: tf.keras.layers.Dense(1, dtype="float32", name=f"{t}_head",
                                               bias_initializer=tf.keras.initializers.Constant(
                                                   self.initial_logits.get(t, 0.0)))
                      for t in config.tasks}
        binary = config.position_tasks
        self.position_tower = None
        if config.position_feature and binary:
            self.position_tower = PositionTower(config.max_position, hidden=config.position_hidden, outputs=len(binary),
                                                name="position_tower")
            self.position_tower.build((None,))
        self.tasks = {t: self._task(t) for t in config.tasks}

    @staticmethod
    def _task(name: str) -> tfrs.tasks.Ranking:
        # Per-example losses averaged over the global batch in compute_loss (correct under tf.distribute too).
        none = tf.keras.losses.Reduction.NONE
        if TASKS[name] == "binary":
            return tfrs.tasks.Ranking(
                loss=tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=none),
                metrics=[tf.keras.metrics.AUC(from_logits=True, name=f"{name}_auc"),
                         tf.keras.metrics.BinaryCrossentropy(from_logits=True, name=f"{name}_log_loss")],
                name=f"{name}_task",
            )
        return tfrs.tasks.Ranking(loss=tf.keras.losses.MeanSquaredError(reduction=none),
                                  metrics=[tf.keras.metrics.RootMeanSquaredError(name=f"{name}_rmse")],
                                  name=f"{name}_task")

    def get_config(self):
        return {**super().get_config(), "initial_logits": self.initial_logits}

    # ------------------------------------------------------------------------------------------------ forward
    @_plain_tensor_code
    def embed(self, features: Dict[str, tf.Tensor], training=False) -> tf.Tensor:
        """x₀ [batch, d] (the concatenated embeddings and numbers the trunk reads), then the interaction factors
        (when `interactions` are set) and the first-order terms β [batch, (bias features + crosses) × heads]."""
        encoded = dict(self.encoder({n: features[n] for n in self.encoder.spec.names}))
        derived = {}
        if self.matcher is not None:
            derived.update(self.matcher(features))
        if self.price_fit is not None:
            derived.update(self.price_fit(features))
        for name, value in derived.items():
            ids = tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, value["tokens"], DERIVED_BINS)
            encoded[self.derived[name]] = {"tokens": value["tokens"], "ids": ids}
        x0 = self.embeddings(encoded, training=training)
        if self.interactions is not None:
            x0 = tf.concat([x0, self.interactions(encoded, training=training)], axis=1)
        if self.biases is None:
            return x0
        fingerprints = {n: token_fingerprints(n, encoded[n]["tokens"]) for c in self.crosses.values() for n in c}
        for name, cross in self.crosses.items():
            encoded[name] = {"ids": hashed_cross([fingerprints[n] for n in cross], self.config.cross_buckets)}
        return tf.concat([x0, self.biases(encoded, training=training)], axis=1)

    @_plain_tensor_code
    def head_logits(self, x0: tf.Tensor, training=False) -> Dict[str, tf.Tensor]:
        """Each head's position-free logit (the predicted value for rating) from `embed`'s output, [batch] each."""
        return self._composed(self._own_logits(x0, training))

    def _composed(self, logits: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Under `purchase_given_click`, purchase's logit becomes that of σ(click) σ(purchase | click)."""
        if not self.config.factorised_purchase:
            return logits
        log_p = -tf.nn.softplus(-logits["click"]) - tf.nn.softplus(-logits["purchase"])  # log σ(a) + log σ(b)
        log_p = tf.minimum(log_p, -1e-7)
        return dict(logits, purchase=log_p - tf.math.log(-tf.math.expm1(log_p)))

    def _own_logits(self, x0: tf.Tensor, training=False) -> Dict[str, tf.Tensor]:
        width = self.embeddings.output_dim
        h = self.body(x0[:, :width], training=training)
        logits = {t: tf.reshape(head(h), [-1]) for t, head in self.heads.items()}
        terms = []  # [batch, terms, heads] added to the logits
        if self.interactions is not None:
            vectors = x0[:, width:width + self.interactions.vector_dim]
            width += self.interactions.vector_dim
            terms.append(tf.reshape(self.interactions.products(vectors), [-1, len(self.interactions.pairs),
                                                                          len(self.heads)]))
        if self.biases is not None:
            terms.append(tf.reshape(x0[:, width:], [-1, len(self.biases.id_spaces), len(self.heads)]))
        if not terms:
            return logits
        total = tf.reduce_sum(tf.concat(terms, axis=1), axis=1)
        return {t: logit + total[:, i] for i, (t, logit) in enumerate(logits.items())}

    @_plain_tensor_code
    def position_logits(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """g_t(p) of each binary head for the logged positions (empty without a position tower)."""
        if self.position_tower is None:
            return {}
        bias = self.position_tower(features[self.config.position_feature])
        return {t: bias[:, i] for i, t in enumerate(self.config.position_tasks)}

    @_plain_tensor_code
    def logits(self, features: Dict[str, tf.Tensor], training=False, with_position=False) -> Dict[str, tf.Tensor]:
        """Head logits; `with_position` adds the position tower (training's logged click model)."""
        logits = self._own_logits(self.embed(features, training=training), training=training)
        if with_position:
            for task, bias in self.position_logits(features).items():
                logits[task] = logits[task] + bias
        return self._composed(logits)

    @_plain_tensor_code
    def serving_outputs(self, logits: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Serving outputs from logits: probabilities for binary heads, the value for rating."""
        return {output_name(t): tf.sigmoid(v) if TASKS[t] == "binary" else v for t, v in logits.items()}

    @_plain_tensor_code
    def call(self, features: Dict[str, tf.Tensor], training=False) -> Dict[str, tf.Tensor]:
        return self.serving_outputs(self.logits(features, training=training))

    @_plain_tensor_code
    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        features, labels = inputs
        logits = self.logits(features, training=training, with_position=True)
        loss = tf.constant(0.0)
        for task, weight in self.config.tasks.items():
            label = tf.cast(tf.reshape(labels[task], [-1, 1]), tf.float32)
            prediction = tf.reshape(logits[task], [-1, 1])
            per_example = self.tasks[task](labels=label, predictions=prediction, training=training)
            loss += weight * tf.nn.compute_average_loss(per_example)
        return loss

    def explain(self, features: Dict[str, tf.Tensor], head: str = "click", steps: int = 32):
        """Per scored item, each feature group's integrated-gradients contribution to `head`'s serving logit."""
        from tfrec.models.ranker_explain import explain_ranker

        return explain_ranker(self, features, head, steps)


def initial_logit(task: str, mean: float) -> float:
    """The head bias that predicts a training label mean: the mean itself (rating) or its log-odds (binary)."""
    if TASKS[task] != "binary":
        return float(mean)
    p = min(max(float(mean), 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


def build_ranker(config: RankerConfig, fitted: FittedFeatures,
                 label_means: Optional[Dict[str, float]] = None) -> DCNRanker:
    """The ranker over the fitted features it reads (the constructor the job, tuner and export use); `label_means`
    (training label means) start each head at the constant prediction that fits them best."""
    names = config.model_features(fitted.spec.names)
    means = dict(label_means or {})
    if config.factorised_purchase and means.get("click"):  # the purchase head's own logit is P(purchase | click)'s
        means["purchase"] = means.get("purchase", 0.0) / means["click"]
    initial = {t: initial_logit(t, m) for t, m in means.items() if t in config.tasks}
    return DCNRanker(FeatureEncoder.from_fitted(fitted, names, name="encoder"), config, initial, name="dcn_ranker")
