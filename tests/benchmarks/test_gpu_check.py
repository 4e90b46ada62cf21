"""benchmarks/gpu_check.py without a GPU: the plan, a tiny CPU run, the JSON schema and the table."""

from __future__ import annotations

import json

from test_official import _load

gpu_check = _load("gpu_check")


def test_dry_run_plans_every_cell_in_order(tmp_path):
    out = tmp_path / "plan.json"
    assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert gpu_check.validate(result) == []
    cells = result["cells"]
    # 3 workloads x 3 batches x 3 dtypes x 3 modes, plus the baseline step and the fine-tune iteration
    assert len(cells) == 3 * 3 * 3 * 3 + 2
    assert {c["status"] for c in cells} == {"planned"}
    modes = [c["mode"] for c in cells if c["kind"] == "throughput"]
    assert modes == sorted(modes, key=["eager", "cuda_graph", "compile"].index)  # eager first, compile last
    assert [c["workload"] for c in cells[27:29]] == ["baseline_step", "finetune_iteration"]
    assert {(c["batch"], c["dtype"]) for c in cells if c["kind"] == "throughput"} == {
        (b, d) for b in (1, 8, 32) for d in ("fp32", "bf16", "fp16")}


def test_tiny_cpu_run_fills_cells_and_table(tmp_path, capsys):
    out = tmp_path / "check.json"
    argv = ["--profile", "tiny", "--device", "cpu", "--batches", "2", "--dtypes", "fp32", "bf16",
            "--modes", "eager", "cuda_graph", "--workloads", "g_forward", "restyle_iteration",
            "--skip-train", "--out", str(out)]
    assert gpu_check.main(argv) == 0
    result = json.loads(out.read_text())
    assert gpu_check.validate(result) == []
    assert result["parity_tests"]["status"] == "skipped"  # no CUDA device here
    by = {(c["workload"], c["dtype"], c["mode"]): c for c in result["cells"]}
    for workload in ("g_forward", "restyle_iteration"):
        fp32, bf16 = by[(workload, "fp32", "eager")], by[(workload, "bf16", "eager")]
        assert fp32["status"] == bf16["status"] == "ok", (fp32["note"], bf16["note"])
        assert fp32["rel_err"] == 0.0 and 0 < bf16["rel_err"] < 0.02
        assert fp32["images_per_s"] == 2 / fp32["seconds"]
        assert fp32["peak_mem_mib"] is None  # CPU: no GPU memory to report
        assert by[(workload, "fp32", "cuda_graph")]["status"] == "skipped"
    printed = capsys.readouterr().out
    assert "CUDA kernel parity tests: skipped" in printed
    table = printed.split("CUDA kernel parity tests")[1]  # after the progress lines
    assert table.count("restyle_iteration") == 4 and "images_per_s" in table


def test_budget_skips_cells_and_validate_reports_problems(tmp_path):
    out = tmp_path / "check.json"
    argv = ["--profile", "tiny", "--device", "cpu", "--batches", "1", "--dtypes", "fp32", "--modes",
            "eager", "--workloads", "g_forward", "--skip-train", "--skip-tests", "--budget", "0", "--out", str(out)]
    assert gpu_check.main(argv) == 0
    result = json.loads(out.read_text())
    (cell,) = result["cells"]
    assert cell["status"] == "skipped" and "budget" in cell["note"]
    bad = {**result, "cells": [{**cell, "status": "ok", "seconds": None, "extra": 1}]}
    del bad["elapsed_s"]
    problems = gpu_check.validate(bad)
    assert any("elapsed_s" in p for p in problems)
    assert any("keys" in p for p in problems) and any("positive time" in p for p in problems)
