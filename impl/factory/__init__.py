"""impl.factory: every "flags → objects" function, in one place above ``impl.nn`` and ``impl.diffusion``.

The names are those of the original's ``script_util`` (``model_and_diffusion_defaults``, ``create_model``,
``create_gaussian_diffusion``, ``create_model_and_diffusion``, the argparse helpers), plus the builders
from a run's flag dict that ``iddpm train|sample|nll`` use.

- ``model_and_diffusion``: the original flags and their defaults, the U-Net, the model and diffusion pair;
- ``diffusion``: ``create_gaussian_diffusion`` (the diffusion flags → a possibly respaced diffusion);
- ``run_flags``: a run's flag dict → model and diffusion, the training defaults, the data placeholders;
- ``classifier``: guided-diffusion's classifier flags, ``create_classifier``, ``load_classifier``;
- ``argparse_flags``: ``--flag`` arguments from a defaults dict and back.

Nothing under ``impl.nn`` or ``impl.diffusion`` imports this package.
"""

from impl.factory.argparse_flags import add_dict_to_argparser, args_to_dict, str2bool
from impl.factory.classifier import (
    CLASSIFIER_CHANNEL_MULT,
    CLASSIFIER_HEAD_CHANNELS,
    classifier_defaults,
    create_classifier,
    load_classifier,
)
from impl.factory.diffusion import create_gaussian_diffusion
from impl.factory.model_and_diffusion import (
    DEFAULT_CHANNEL_MULT,
    NUM_CLASSES,
    check_class_dropout_prob,
    create_model,
    create_model_and_diffusion,
    load_checkpoint,
    model_and_diffusion_defaults,
    model_flag_names,
    parse_attention_resolutions,
    parse_channel_mult,
)
from impl.factory.run_flags import (
    DIFFUSION_FLAG_TO_ARG,
    TRAIN_MODEL_OVERRIDES,
    build_diffusion,
    build_model_and_diffusion,
    check_value_types,
    resolve_data_flags,
    train_model_defaults,
)

__all__ = [
    "CLASSIFIER_CHANNEL_MULT",
    "CLASSIFIER_HEAD_CHANNELS",
    "DEFAULT_CHANNEL_MULT",
    "DIFFUSION_FLAG_TO_ARG",
    "NUM_CLASSES",
    "TRAIN_MODEL_OVERRIDES",
    "add_dict_to_argparser",
    "args_to_dict",
    "build_diffusion",
    "build_model_and_diffusion",
    "check_class_dropout_prob",
    "check_value_types",
    "classifier_defaults",
    "create_classifier",
    "create_gaussian_diffusion",
    "create_model",
    "create_model_and_diffusion",
    "load_checkpoint",
    "load_classifier",
    "model_and_diffusion_defaults",
    "model_flag_names",
    "parse_attention_resolutions",
    "parse_channel_mult",
    "resolve_data_flags",
    "str2bool",
    "train_model_defaults",
]
