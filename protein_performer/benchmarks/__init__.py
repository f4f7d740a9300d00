"""The field's benchmarks as library code: the tasks of ``protein-performer-benchmark``
(:mod:`.tasks` lists them: ``dms``, variant effects on deep mutational scans) and the
measurements behind docs/benchmarks.md (``cli/bench.py`` and scripts/ call these)."""
