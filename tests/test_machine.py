"""The CPU name that bench reports and train summaries record."""
from nova_deploy.machine import cpu_name


def test_cpu_name_reads_the_model_name_and_falls_back_without_one(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU @ 2.0GHz\nflags\t: avx512f\n")
    assert cpu_name("fallback", info) == "Test CPU @ 2.0GHz"
    info.write_text("processor\t: 0\nflags\t: neon\n")
    assert cpu_name("fallback", info) == "fallback"
    assert cpu_name("fallback", tmp_path / "missing") == "fallback"
