"""The CPU name that bench reports and train summaries record."""
from nova_deploy.machine import cpu_bf16_flags, cpu_name


def test_cpu_name_reads_the_model_name_and_falls_back_without_one(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU @ 2.0GHz\nflags\t: avx512f\n")
    assert cpu_name("fallback", info) == "Test CPU @ 2.0GHz"
    info.write_text("processor\t: 0\nflags\t: neon\n")
    assert cpu_name("fallback", info) == "fallback"
    assert cpu_name("fallback", tmp_path / "missing") == "fallback"


def test_cpu_bf16_flags_lists_the_native_bf16_flags_present(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Zen4\nflags\t: fpu avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_bf16_flags(info) == ["avx512_bf16"]
    info.write_text("model name\t: Sapphire Rapids\nflags\t: avx512_bf16 amx_tile amx_bf16\n")
    assert cpu_bf16_flags(info) == ["avx512_bf16", "amx_bf16"]
    info.write_text("model name\t: Skylake\nflags\t: avx512f avx512_vnni\n")
    assert cpu_bf16_flags(info) == []
    assert cpu_bf16_flags(tmp_path / "missing") == []
