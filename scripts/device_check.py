"""The Python steps of scripts/device_check.sh (run through it; see its header).

    python scripts/device_check.py env DIR DEVICE       # machine, torch, CUDA -> DIR/env.json
    python scripts/device_check.py parity DIR DEVICE [L]  # causal FAVOR+ implementations agree
    python scripts/device_check.py report DIR           # DIR/report.md from what the steps wrote

parity: on DEVICE, every causal implementation that runs there (loop, chunkwise; cpp on CPU)
against the Python loop in float64 on the same device: outputs and the three input gradients,
with padding and growing key maxima (float64 must agree to 1e-10, float32 to 2e-4 relative),
and a bf16-autocast layer with large activations must stay finite. Writes parity.csv.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
from pathlib import Path

IMPLS = ("loop", "chunkwise", "cpp")
TOL = {"float64": 1e-10, "float32": 2e-4}


def env(out: Path, device: str) -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "device": device,
        "cpu": _cpu_model(),
        "threads": torch.get_num_threads(),
        "git": _git_rev(),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            flash_sdp=torch.backends.cuda.flash_sdp_enabled(),
        )
    (out / "env.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _git_rev() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "?"
        )
    except (OSError, subprocess.SubprocessError):
        return "?"


def _inputs(device: str, dtype, length: int = 700):
    import torch

    from protein_performer.attention import gaussian_orthogonal_random_matrix

    gen = torch.Generator().manual_seed(0)
    b, h, d, m = 2, 4, 16, 32
    q, k, v, g = (
        torch.randn(b, h, length, d, generator=gen, dtype=torch.float64) for _ in range(4)
    )
    k = k * torch.linspace(0.2, 3.0, length, dtype=torch.float64)[:, None]  # maxima grow
    w = gaussian_orthogonal_random_matrix(m, d, generator=gen, dtype=torch.float64)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, :5] = False  # left padding: rows before the first real key
    mask[1, -37:] = False
    return [t.to(device=device, dtype=dtype) for t in (q, k, v, w, g)] + [mask.to(device)]


def _run(impl: str, kernel: str, tensors) -> list:
    from protein_performer.attention import favor_attention

    q, k, v, w, g, mask = tensors
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    out = favor_attention(q, k, v, w, kernel=kernel, causal=True, mask=mask, causal_impl=impl)
    out.backward(g)
    return [out.detach(), q.grad, k.grad, v.grad]


def parity(out: Path, device: str, length: int = 700) -> bool:
    import pandas as pd
    import torch

    from protein_performer.attention.favor import causal as favor_causal

    rows, ok = [], True
    for kernel in ("softmax", "relu"):
        ref = _run("loop", kernel, _inputs(device, torch.float64, length))
        for dtype in (torch.float64, torch.float32):
            tensors = _inputs(device, dtype, length)
            for impl in IMPLS:
                try:
                    favor_causal.resolve_impl(impl, tensors[0])
                except ValueError:  # cpp off CPU
                    continue
                got = _run(impl, kernel, tensors)
                rel = max(
                    ((a.double() - b).abs().max() / b.abs().max().clamp_min(1.0)).item()
                    for a, b in zip(got, ref)
                )
                finite = all(torch.isfinite(a).all().item() for a in got)
                name = str(dtype).removeprefix("torch.")
                passed = finite and rel <= TOL[name]
                ok &= passed
                rows.append(
                    {
                        "kernel": kernel,
                        "dtype": name,
                        "impl": impl,
                        "max_rel_diff": rel,
                        "tolerance": TOL[name],
                        "finite": finite,
                        "pass": passed,
                    }
                )
                print(
                    f"{kernel:8} {name:8} {impl:10} max rel diff vs float64 loop {rel:.2e} "
                    f"{'PASS' if passed else 'FAIL'}",
                    flush=True,
                )
    finite = _bf16_layer_finite(device, length)
    ok &= finite
    rows.append(
        {
            "kernel": "softmax+relu",
            "dtype": "bf16-autocast layer",
            "impl": "auto",
            "max_rel_diff": math.nan,
            "tolerance": math.nan,
            "finite": finite,
            "pass": finite,
        }
    )
    print(f"bf16 autocast layers (x 30 N(0, 1)), forward and backward finite: {finite}")
    pd.DataFrame(rows).to_csv(out / "parity.csv", index=False)
    return ok


def _bf16_layer_finite(device: str, length: int) -> bool:
    import torch

    from protein_performer.attention import AttentionConfig, build_attention

    finite = True
    for kind in ("favor_softmax", "favor_relu"):
        cfg = AttentionConfig(kind=kind, causal=True, nb_features=64, redraw_interval=0)
        layer = build_attention(cfg, d_model=256, n_heads=4).to(device)
        x = (30.0 * torch.randn(2, length, 256, device=device)).requires_grad_()
        with torch.autocast(device, dtype=torch.bfloat16):
            y = layer(x)
        y.float().pow(2).mean().backward()
        finite &= bool(torch.isfinite(y).all()) and bool(torch.isfinite(x.grad).all())
    return finite


# ---------------------------------------------------------------- report


def _table(df, value: str = "time_ms") -> str:
    """kind x L table of 'time ms (peak MiB)' for one pass and mode."""
    df = df.dropna(subset=[value]).copy()
    if df.empty:
        return "(no measurements)\n"
    df["cell"] = [f"{t:.2f} ({p:.0f})" for t, p in zip(df[value], df["peak_mib"])]
    wide = df.pivot_table(index="L", columns="kind", values="cell", aggfunc="first")
    return wide.to_markdown() + "\n"


def _time(df, kind: str, length: int, col: str = "time_ms") -> float:
    sel = df[(df.kind == kind) & (df.L == length) & (df["pass"] == "fwd+bwd")]
    return float(sel[col].iloc[0]) if col in sel and not sel.empty else math.nan


def _summary(runs: dict, length: int) -> list[str]:
    """The issue's figures: causal fwd+bwd at L = length (the largest measured if absent)."""
    bf16 = runs.get("bf16")
    if bf16 is None or "time_ms" not in bf16:
        return []
    if length not in set(bf16.L):
        length = int(bf16.L.max())
    fav, exact = _time(bf16, "favor_softmax", length), _time(bf16, "exact", length)
    loop = _time(bf16, "favor_softmax:loop", length)
    impl = bf16[bf16.kind == "favor_softmax"].get("impl", bf16.kind[:0]).dropna()
    impl = impl.iloc[0] if not impl.empty else "?"
    lines = [
        f"Causal, fwd+bwd, L = {length}, bf16 inputs (FAVOR+ computes in float32):",
        "",
        f"- favor_softmax by the {impl} form: {fav:.2f} ms; exact (SDPA): {exact:.2f} ms; "
        f"exact / favor = **{exact / fav:.2f}x** (target >= 3x)",
        f"- the Python chunk loop: {loop:.2f} ms ({loop / fav:.1f}x the {impl} form's time)",
    ]
    big = int(bf16.L.max())
    if big > length:
        ratio = _time(bf16, "favor_softmax", big, "peak_mib") / _time(
            bf16, "favor_softmax", length, "peak_mib"
        )
        lines.append(
            "- favor_softmax peak memory: "
            f"{_time(bf16, 'favor_softmax', length, 'peak_mib'):.0f} MiB "
            f"at L = {length}, {_time(bf16, 'favor_softmax', big, 'peak_mib'):.0f} MiB at "
            f"L = {big} (ratio {ratio:.2f} for {big // length}x the length: linear is "
            f"{big // length})"
        )
    for name, label in (("fp32", "float32"), ("tf32", "float32 inputs, TF32 matmuls")):
        if name in runs and "time_ms" in runs[name]:
            lines.append(
                f"- {label}: favor_softmax {_time(runs[name], 'favor_softmax', length):.2f} ms"
                + (
                    f", exact {_time(runs[name], 'exact', length):.2f} ms"
                    if "exact" in set(runs[name].kind)
                    else ""
                )
            )
    chunks = {
        int(n.removeprefix("chunk")): df
        for n, df in runs.items()
        if n.startswith("chunk") and "time_ms" in df
    }
    if chunks:
        cells = [
            f"C = {c}: " + ", ".join(f"{t:.2f} ms at L = {x}" for x, t in zip(df.L, df.time_ms))
            for c, df in sorted(chunks.items())
        ]
        lines.append("- the chunkwise form by chunk size (bf16): " + "; ".join(cells))
    return lines + [""]


def report(out: Path) -> Path:
    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from protein_performer.benchmarks.attention_targets import check_targets

    lines = ["# Device check", ""]
    env_path = out / "env.json"
    if env_path.is_file():
        info = json.loads(env_path.read_text())
        lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.items()] + [""]
    runs = {
        p.name.removeprefix("bench_"): pd.read_csv(p / "attention.csv")
        for p in sorted(out.glob("bench_*"))
        if (p / "attention.csv").is_file()
    }
    summary = _summary(runs, 8192)
    if summary:
        lines += ["## Summary", "", *summary]
    steps = out / "steps.tsv"  # written by device_check.sh: step, seconds, exit status
    if steps.is_file():
        lines += ["## Steps", "", "| step | seconds | exit |", "|---|--:|--:|"]
        for row in steps.read_text().splitlines():
            step, secs, rc = row.split("\t")
            note = " (timed out)" if rc in ("124", "137") else ""
            lines.append(f"| {step} | {secs} | {rc}{note} |")
        lines.append("")
    if (out / "parity.csv").is_file():
        par = pd.read_csv(out / "parity.csv")
        lines += [
            "## Parity: causal FAVOR+ implementations against the float64 loop",
            "",
            par.to_markdown(index=False, floatfmt=".2e"),
            "",
        ]
    for name, df in runs.items():
        cmd = out / f"bench_{name}" / "command.txt"
        lines += [f"## Attention benchmark: {name}", ""]
        if cmd.is_file():
            lines += ["```", cmd.read_text().strip(), "```", ""]
        if "time_ms" in df:
            for (mode, pas), part in df.groupby(["mode", "pass"], sort=False):
                lines += [f"{mode}, {pas}: time ms (peak MiB above the inputs)", "", _table(part)]
        if "note" in df:
            lines += [
                f"- not measured: {r.kind} {r['mode']} {r['pass']} L={r.L}: {r.note}"
                for _, r in df[df.note.notna()].iterrows()
            ] + [""]
        judged = [line for line in check_targets(df)[1:] if "n/a" not in line]
        if judged:
            lines += ["Targets judged on this run:", "", "```", *judged, "```", ""]
    train = out / "train"
    if train.is_dir():
        lines += [
            "## Training: causal LM, bf16-mixed",
            "",
            "| kind | steps | train/loss | valid/loss | valid/perplexity | tok/s | finite |",
            "|---|--:|--:|--:|--:|--:|---|",
        ]
        lines += [_train_row(run) for run in sorted(p for p in train.iterdir() if p.is_dir())]
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")
    return path


def _train_row(run: Path) -> str:
    import pandas as pd

    metrics_path = run / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    steps = "?"
    log = run / "csv" / "metrics.csv"
    if log.is_file():
        df = pd.read_csv(log)
        if "step" in df and not df.empty:  # Lightning's 0-based step of the last record
            steps = str(int(df.step.max()) + 1)

    def fmt(key: str, spec: str = ".3f") -> str:
        value = metrics.get(key)
        return "n/a" if value is None else format(value, spec)

    losses = [v for k, v in metrics.items() if "loss" in k or "perplexity" in k]
    finite = (
        "no metrics"
        if not metrics
        else "yes"
        if all(v is not None and math.isfinite(v) for v in losses)
        else "NO"
    )
    return (
        f"| {run.name} | {steps} | {fmt('train/loss')} | {fmt('valid/loss')} | "
        f"{fmt('valid/perplexity')} | {fmt('train/tokens_per_s', '.0f')} | {finite} |"
    )


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("env", "parity", "report"):
        print(__doc__)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    if argv[0] == "report":
        report(out)
        return 0
    device = argv[2] if len(argv) > 2 else "cuda"
    if argv[0] == "env":
        env(out, device)
        return 0
    return 0 if parity(out, device, *(int(a) for a in argv[3:4])) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
