from dataclasses import dataclass

from protein_performer.fields import from_shared_fields


@dataclass
class Source:
    seed: int = 7
    device: str = "cuda"
    n_proteins_in_study: int = 400


@dataclass
class Step:
    seed: int = 0
    device: str = "auto"
    n_proteins: int = 800
    threshold: float = 0.1


def test_shared_fields_are_handed_on_and_explicit_values_win() -> None:
    assert from_shared_fields(Step, Source()) == Step(seed=7, device="cuda")
    step = from_shared_fields(Step, Source(), n_proteins=400, seed=3)
    assert step == Step(seed=3, device="cuda", n_proteins=400, threshold=0.1)
