"""impl: the fast PyTorch Improved DDPM library.

Public names are those of the original improved-diffusion code, re-exported here from the subpackages so
that switching from the original is an import change.
"""

from impl.data import *  # noqa: F403
from impl.diffusion import *  # noqa: F403
from impl.evaluate import *  # noqa: F403
from impl.factory import *  # noqa: F403
from impl.nn import *  # noqa: F403
from impl.sampling import *  # noqa: F403
from impl.train import *  # noqa: F403
