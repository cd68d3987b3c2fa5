"""Training tasks: how many outputs a model gives, what each one means, how they are scored, which data feeds them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from avse.errors import ConfigError
from avse.training.losses import neg_si_sdr, pit_neg_si_sdr


@dataclass(frozen=True)
class Task:
    """One task: ``n_outputs`` estimates per mixture, scored against ``references`` by ``loss``.

    ``data`` names the data module a recipe gets unless it says otherwise
    (``"corpus"``: an AVSE-layout corpus; ``"speakers"``: two folders of
    recordings). ``named_outputs``: the outputs have identities (fixed order),
    so validation logs each one.
    """

    name: str
    n_outputs: int = 1
    data: str = "corpus"
    named_outputs: bool = False

    def references(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The clean sources the outputs are scored against -> ``[B, S, T]`` (target first)."""
        if self.n_outputs == 2:
            return torch.stack([batch["target"], batch["interferer"]], dim=1)  # [B, 2, T]
        return batch["target"][:, None]  # [B, 1, T]

    def loss(self, est: Tensor, batch: Mapping[str, Tensor], max_db: float | None = None) -> tuple[Tensor, Tensor]:
        """est ``[B, S, T]`` -> (loss ``[B]``, the estimates in the order of ``references`` ``[B, S, T]``).

        The base task: negative SI-SDR of output s against reference s
        (saturating at ``max_db``, see ``neg_si_sdr``), averaged over the
        outputs, in the order the model gives them.
        """
        return neg_si_sdr(est, self.references(batch), max_db=max_db).mean(-1), est  # [B], [B, S, T]

    def output_names(self, speakers: list[str]) -> list[str] | None:
        """Names of the outputs, in order, when the data gives its sources names (None: unnamed)."""
        return list(speakers[: self.n_outputs])


@dataclass(frozen=True)
class PermutationTask(Task):
    """Blind separation: the best order of the outputs is found per item (permutation-invariant SI-SDR)."""

    def loss(self, est: Tensor, batch: Mapping[str, Tensor], max_db: float | None = None) -> tuple[Tensor, Tensor]:
        """est ``[B, S, T]`` -> (PIT loss ``[B]``, estimates reordered to the references ``[B, S, T]``).

        A silent reference (the target alone, ``p_clean``) is scored by the
        energy of its output against the mixture's (``silent_source_loss``):
        the separator learns to give one talker whole and leave the other output silent.
        """
        loss, perm = pit_neg_si_sdr(est, self.references(batch), max_db=max_db, mixture=batch.get("mixture"))  # [B], [B, S]
        return loss, torch.gather(est, 1, perm[..., None].expand(-1, -1, est.shape[-1]))

    def output_names(self, speakers: list[str]) -> list[str] | None:
        """Blind outputs have no names."""
        return None


#: the tasks a recipe may name
TASK_OBJECTS: dict[str, Task] = {
    "enhance": Task("enhance"),  # one output: the target speech out of noise (or anything)
    "extract": Task("extract"),  # one output: the talker whose lips (or name) are given
    "separate": PermutationTask("separate", n_outputs=2),
    "known": Task("known", n_outputs=2, data="speakers", named_outputs=True),  # output 0 speaker A, 1 speaker B
}
TASKS = tuple(TASK_OBJECTS)


def get_task(name: str) -> Task:
    """The task a recipe names; ConfigError listing the known ones otherwise."""
    try:
        return TASK_OBJECTS[name]
    except KeyError:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {name!r}") from None
