"""The attention benchmark runs a case and evaluates targets (tiny sizes)."""

import subprocess
import sys

import pandas as pd
import torch

from protein_performer.benchmarks.attention_case import run_case
from protein_performer.benchmarks.attention_targets import check_targets, flops


def _spec(kind, causal, pas):
    return {
        "kind": kind,
        "causal": causal,
        "pass": pas,
        "length": 64,
        "batch": 1,
        "heads": 2,
        "head_dim": 8,
        "features": 16,
        "chunk_size": 16,
        "device": "cpu",
        "dtype": "float32",
        "repeats": 1,
        "budget_s": 1.0,
    }


def test_run_case_measures_time_and_memory():
    for kind in ("exact", "favor_softmax", "favor_relu"):
        for causal in (False, True):
            for pas in ("fwd", "fwd+bwd"):
                res = run_case(_spec(kind, causal, pas))
                assert res["time_s"] > 0 and res["runs"] == 1
                assert res["matmul_gflops"] > 0.1  # the rate beside the case
    spec = _spec("favor_softmax", False, "fwd")
    assert flops("favor_softmax", False, False, spec) == 8 * 64 * 16 * 8 * 2
    assert flops("exact", True, True, spec) == 3 * 2 * 64 * 64 * 8 * 2


def test_check_targets_reads_the_table():
    rows = []
    for mode in ("bidirectional", "causal"):
        for L in (1024, 4096, 8192, 32768):
            rows.append(
                {
                    "kind": "exact",
                    "mode": mode,
                    "pass": "fwd+bwd",
                    "L": L,
                    "time_ms": L * L / 1e4,
                    "peak_mib": 10.0,
                }
            )
            rows.append(
                {
                    "kind": "favor_softmax",
                    "mode": mode,
                    "pass": "fwd+bwd",
                    "L": L,
                    "time_ms": L / 100,
                    "peak_mib": L / 100,
                    "pct_matmul_peak": 50.0,
                }
            )
            rows.append(
                {
                    "kind": "aft_conv",
                    "mode": mode,
                    "pass": "fwd+bwd",
                    "L": L,
                    "time_ms": L / 200,
                    "peak_mib": 1.0,
                }
            )
            if L <= 4096:  # the peer stops early; only the lengths it has are compared
                rows.append(
                    {
                        "kind": "performer_pytorch",
                        "mode": mode,
                        "pass": "fwd+bwd",
                        "L": L,
                        "time_ms": L / 50,
                        "peak_mib": 1.0,
                    }
                )
    lines = check_targets(pd.DataFrame(rows))
    assert len(lines) == 14 and all("PASS" in line for line in lines[1:12])
    assert "L=8192 >= 3x faster than causal exact: 81.9x" in lines[3]
    assert "beside" not in lines[9]
    beside = pd.DataFrame(rows).assign(
        pct_matmul_beside=[44.0 if r.get("pct_matmul_peak") else None for r in rows]
    )
    line = check_targets(beside)[9]
    assert "causal FAVOR+" in line and "PASS" in line and "beside each case: min 44.0%" in line
    assert "n/a" in lines[12] and "aft_simple" in lines[12]  # not measured
    assert "PASS" in lines[13] and "aft_conv" in lines[13]
    slow = pd.DataFrame(rows)
    slow.loc[
        (slow.kind == "performer_pytorch") & (slow["mode"] == "causal") & (slow.L == 1024),
        "time_ms",
    ] = 1024 / 100 * 1.2
    assert "FAIL" in check_targets(slow)[11] and "1.20x" in check_targets(slow)[11]


def test_chunk_size_defaults_to_the_library_and_can_be_set(monkeypatch, tmp_path):
    from protein_performer.benchmarks import attention as bench
    from protein_performer.cli import bench as cli

    seen = []

    def in_process(spec, timeout, malloc_cache=False):
        seen.append(spec["chunk_size"])
        return run_case(spec)

    monkeypatch.setattr(bench, "_subprocess_case", in_process)
    monkeypatch.setattr(bench, "matmul_peak_gflops", lambda device, n=2048: 100.0)
    tiny = [
        "--kinds",
        "favor_softmax",
        "--lengths",
        "32",
        "--causal",
        "true",
        "--passes",
        "fwd",
        "--heads",
        "2",
        "--head-dim",
        "8",
        "--features",
        "16",
        "--repeats",
        "1",
        "--no-peer",
    ]
    cli.main(["attention", *tiny, "--out", str(tmp_path / "a")])
    cli.main(["attention", *tiny, "--chunk-size", "8", "--out", str(tmp_path / "b")])
    assert seen == [None, 8]  # None: the implementation's default chunk


def test_impls_time_each_causal_implementation(monkeypatch, tmp_path):
    from protein_performer.attention.favor import causal_cpu as favor_causal_cpu
    from protein_performer.benchmarks import attention as bench

    # the implementation choice is causal FAVOR+'s only
    assert bench._series(["exact", "favor_relu"], False, ["loop", "chunkwise"]) == [
        ("exact", "auto"),
        ("favor_relu", "auto"),
    ]
    monkeypatch.setattr(
        bench, "_subprocess_case", lambda spec, timeout, malloc_cache=False: run_case(spec)
    )
    monkeypatch.setattr(bench, "matmul_peak_gflops", lambda device, n=2048: 100.0)
    df = bench.bench_attention(
        bench.AttentionBench(
            kinds=["favor_relu"],
            lengths=[64],
            causal=[True],
            passes=["fwd"],
            heads=2,
            head_dim=8,
            features=16,
            repeats=1,
            peer=False,
            impls=["auto", "loop", "chunkwise"],
            out=str(tmp_path),
        )
    )
    assert list(df.kind) == ["favor_relu", "favor_relu:loop", "favor_relu:chunkwise"]
    auto = "cpp" if favor_causal_cpu.usable(torch.zeros(1)) else "loop"
    assert list(df.impl) == [auto, "loop", "chunkwise"]
    assert (tmp_path / "attention.csv").is_file()


def test_memory_probe_sees_a_fresh_allocation():
    """The CPU peak memory of a case is the rise of the peak resident set over its start; in
    a fresh process, as the benchmark runs each case."""
    code = (
        "import torch\n"
        "from protein_performer.benchmarks.attention_case import _rss_peak, _rss_reset_peak\n"
        "base = _rss_reset_peak()\n"
        "block = torch.ones(64 * 2**20 // 4)\n"  # 64 MiB, touched
        "print((_rss_peak() - base) / 2**20)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rise_mib = float(out.stdout.split()[-1])
    assert 60 <= rise_mib < 200, rise_mib


def test_in_process_case_turns_an_error_into_the_case_note(monkeypatch):
    from protein_performer.attention.favor import causal_cpu as favor_causal_cpu
    from protein_performer.benchmarks import attention as bench

    monkeypatch.setattr(favor_causal_cpu, "usable", lambda q: False)
    spec = {**_spec("favor_softmax", True, "fwd"), "causal_impl": "cpp"}
    res = bench._in_process_case(spec)
    assert res["error"].startswith("ValueError: model.attention.causal_impl=cpp runs CPU")
    res = bench._in_process_case({**spec, "causal_impl": "chunkwise", "matmul_size": 64})
    assert res["time_s"] > 0 and res["impl"] == "chunkwise"


def test_a_case_runs_in_a_fresh_process():
    """The default path: each case in its own interpreter (``python -m`` of the benchmark
    module), its result read back from the last stdout line."""
    from protein_performer.benchmarks import attention as bench

    res = bench._subprocess_case({**_spec("favor_relu", True, "fwd"), "matmul_size": 64}, 300)
    assert res["time_s"] > 0 and res["runs"] == 1 and res["impl"] in ("cpp", "loop")
    bad = bench._subprocess_case({**_spec("no_such_kind", False, "fwd"), "matmul_size": 64}, 300)
    assert bad["error"].startswith("exit 1: ValueError: attention.kind must be one of")


def test_cli_names_an_unknown_kind(tmp_path):
    import pytest

    from protein_performer.cli import bench as cli

    with pytest.raises(SystemExit, match="--kinds: unknown kind 'favour'"):
        cli.main(["attention", "--kinds", "favour", "--no-peer", "--out", str(tmp_path)])
