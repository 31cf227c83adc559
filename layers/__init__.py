"""Neural building blocks in torch; nothing here knows about boolean logic."""

import warnings

from layers.embeddings import EMBEDDINGS, Coherence, coherence, make_embedding, welch_bound
from layers.hooks import HookPoint, capture, hook_names, hooks
from layers.matrices import compact, times_transpose, to_dense
from layers.network import Network, ReLUBlock

# torch calls its CSR products "beta"; the ones used here are tested, and the notice would only
# reach users as noise
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state", category=UserWarning)

__all__ = [
    "EMBEDDINGS",
    "Coherence",
    "HookPoint",
    "Network",
    "ReLUBlock",
    "capture",
    "coherence",
    "compact",
    "hook_names",
    "hooks",
    "make_embedding",
    "times_transpose",
    "to_dense",
    "welch_bound",
]
