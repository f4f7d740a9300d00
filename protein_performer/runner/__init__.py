"""The floor every user of a trained model stands on: one loader, one input opener, one
input-error base, one batch converter and packer, one engine over batches (and windows)."""

from protein_performer.data.batching import Batch, BatchConverter, pack
from protein_performer.errors import InputError
from protein_performer.model.checkpoint import CheckpointError
from protein_performer.model.outputs import ModelOutputs
from protein_performer.runner.engine import Engine
from protein_performer.runner.inputs import InputFileError, file_labels, open_input
from protein_performer.runner.loading import LoadedLM, load_model, load_pretrained_folder

__all__ = [
    "Batch",
    "BatchConverter",
    "CheckpointError",
    "Engine",
    "InputError",
    "InputFileError",
    "LoadedLM",
    "ModelOutputs",
    "file_labels",
    "load_model",
    "load_pretrained_folder",
    "open_input",
    "pack",
]
