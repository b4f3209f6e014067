"""The benchmark command runs and prints its table (tiny sizes: this checks it works, not speed)."""

from __future__ import annotations

import pytest

from benchmarks.run import Row, format_rows, main


@pytest.mark.parametrize("section", ["loop", "sweep"])
def test_benchmark_section_prints_its_rows(section: str, capsys) -> None:
    assert main(["--quick", "--section", section, "--backend", "numpy"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == [
        "section",
        "subject",
        "measure",
        "crossgrad",
        "bare",
        "ratio",
        "target",
        "met",
    ]
    lines = [line for line in table.splitlines() if line.startswith(section)]
    assert any(" numpy " in line for line in lines)
    if section == "sweep":  # the verdict check compares the batched and per-case runs
        (verdicts,) = [line for line in lines if "verdicts" in line]
        assert verdicts.rstrip().endswith("yes")


def test_a_missed_target_reads_no() -> None:
    row = Row("loop", "torch", "cases/s", 10.0, 20.0, 0.5, ">= 0.7 x bare", False)
    assert format_rows([row]).splitlines()[-1].split()[-1] == "NO"


@pytest.mark.full  # two sweep processes
def test_memory_section_compares_the_peaks_of_two_sweep_processes(capsys) -> None:
    assert main(["--quick", "--section", "memory", "--backend", "numpy"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("memory")]
    (peak,) = [line for line in lines if "peak tree MB" in line]
    assert peak.split()[1] == "1,000" and "<= 2 x 100 variants" in peak
    assert len([line for line in lines if "wall s" in line]) == 2


@pytest.mark.full
def test_fuzz_section_prints_the_cases_per_second_of_a_campaign(capsys) -> None:
    assert main(["--quick", "--section", "fuzz", "--backend", "torch"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fuzz")]
    (torch,) = lines
    assert torch.split()[1:3] == ["torch", "cases/s"]
    assert float(torch.split()[3].replace(",", "")) > 0
