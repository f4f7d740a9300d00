"""The field's benchmarks as library code: the tasks of ``protein-performer-benchmark``
(:mod:`.tasks` lists them: ``dms``, variant effects on deep mutational scans; ``contacts``
and ``ss`` on real structures, :mod:`.structure_tasks`; the linear probes ``location``,
``soluble``, ``disorder``, ``sa``, :mod:`.probe_tasks`) and the
measurements behind docs/benchmarks.md (``cli/bench.py`` and scripts/ call these)."""
