"""torch.compile of the training step: the settings trainer.compile accepts, and the on-disk cache that spares a
repeated or resumed run most of the compilation."""

import os
import warnings
from pathlib import Path

import torch
from torch._inductor import list_mode_options

# trainer.compile: false (eager), true (torch's default mode) or any torch.compile mode by name, e.g.
# reduce-overhead (CUDA graphs: the tabular step's thousands of tiny kernels launched as one graph on a GPU).
COMPILE_MODES = {False: None, True: "default", **{mode: mode for mode in list_mode_options()}}


def cache_dir() -> Path:
    """Where inductor keeps compiled graphs between processes: TORCHINDUCTOR_CACHE_DIR where set, else the user's
    cache folder (torch's own default lies under /tmp, which a reboot or a cluster's job clean-up empties).
    POWER LRS (C) step on 2 CPU cores: 60 s to compile cold, 12 s from this cache."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lrsflows" / "torchinductor"


def uses_cuda_graphs(setting) -> bool:
    """Whether the mode replays CUDA graphs, whose outputs the next replay overwrites: each step is then marked
    (torch.compiler.cudagraph_mark_step_begin) so the previous step's loss may still be read."""
    mode = COMPILE_MODES[setting]
    return mode is not None and bool(list_mode_options(mode).get("triton.cudagraphs"))


def compiled(model: torch.nn.Module, setting) -> torch.nn.Module:
    """`model` torch.compile'd in the mode `setting` names (a COMPILE_MODES key), or itself for false."""
    mode = COMPILE_MODES[setting]
    if mode is None:
        return model
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir())  # read by inductor when it first caches
    # Inductor's own lowering calls a helper it has deprecated: a warning per compilation nobody outside torch can act on.
    warnings.filterwarnings("ignore", message=r"`torch\._prims_common\.check` is deprecated", category=FutureWarning)
    return torch.compile(model, mode=mode)
