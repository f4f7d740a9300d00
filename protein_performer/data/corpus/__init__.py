"""Working on a corpus before training.

``download`` (UniProt releases, resumable, verified), ``benchmark_fetch`` (benchmark data
sets), ``split`` (train/valid/test files, at random or by cluster), ``stats`` (counts, lengths).
"""
