"""benchmarks/bench_scale_iteration.py on CPU with the tiny transformer: one TDM-R1 iteration of the trainer's own
code timed, FLOPs counted, JSON written; a setting that runs out of memory is recorded and the others run."""

from __future__ import annotations

import json

import pytest
import torch

from bench_module import load_benchmark

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_scale_iteration")


def test_tiny_benchmark_on_cpu(bench, tmp_path, monkeypatch):
    real_build = bench.build_trainer

    def build(args, batch, checkpointing, out_dir):
        if batch == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB (simulated)")
        return real_build(args, batch, checkpointing, out_dir)

    monkeypatch.setattr(bench, "build_trainer", build)
    out = tmp_path / "bench.json"
    argv = ["--tiny", "--device", "cpu", "--batches", "2,3", "--checkpointing", "off", "--warmup", "0"]
    result = bench.main([*argv, "--repeats", "1", "--threads", "1", "--peak-tflops", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    ok, oom = result["runs"]
    assert oom == {"per_device_batch": 3, "gradient_checkpointing": False, "status": "oom", "error": oom["error"]}
    assert "out of memory" in oom["error"]
    assert ok["status"] == "ok" and ok["per_device_batch"] == 2 and ok["images_per_iteration"] == 2
    for key in ("seconds_per_iteration", "images_per_second", "peak_memory_bytes", "achieved_model_tflops", "mfu"):
        assert ok[key] > 0, key
    assert ok["counted_flops_per_iteration"] > 0
    assert result["model_flops_per_image"] * 2 == ok["model_flops_per_iteration"] == ok["counted_flops_per_iteration"]
    assert any("mm" in op for op in ok["counted_flops_by_op"])  # matmuls of the transformer and its LoRA
    assert set(ok["phase_seconds"]) == {"rollout", "update_fake", "train_surrogate", "update_generator"}
    assert ok["mfu"] == pytest.approx(ok["model_flops_per_iteration"] / ok["seconds_per_iteration"] / 1e12)
    assert result["transformer_parameters"] > 0 and result["peak_source"] == "--peak-tflops"


def test_tiny_benchmark_peak_memory_with_and_without_checkpointing(bench, tmp_path, capsys):
    """Gradient checkpointing (the trainer's own switch) at least halves the activations kept for backward; the
    real-size estimate is printed before the runs (Z-Image as shipped fits where it would not without)."""
    argv = ["--tiny", "--device", "cpu", "--batches", "4", "--checkpointing", "off,on", "--warmup", "0"]
    result = bench.main([*argv, "--repeats", "1", "--threads", "1", "--out", str(tmp_path / "b.json")])
    off, on = result["runs"]
    assert off["status"] == on["status"] == "ok" and on["gradient_checkpointing"]
    assert 0 < 2 * on["saved_for_backward_peak_bytes"] < off["saved_for_backward_peak_bytes"]
    printed = capsys.readouterr().out
    assert printed.index("memory estimate") < printed.index('"per_device_batch"')
    est = {(e["kind"], e["gradient_checkpointing"], e["base_dtype"]): e for e in result["memory_estimates_real_size"]}
    assert est[("zimage", True, "bf16")]["total_gib"] < 80 < est[("zimage", False, "fp32")]["total_gib"]
    assert est[("sd3", True, "fp32")]["total_gib"] < est[("sd3", False, "fp32")]["total_gib"]


def test_peak_table_by_device_name(bench, monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert bench.peak_flops(cuda, None) == (989e12, "table (H100)")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert bench.peak_flops(cuda, None)[0] == 756e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert bench.peak_flops(cuda, None)[0] == 989e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Card")
    assert bench.peak_flops(cuda, None)[0] is None
    assert bench.peak_flops(cuda, 500.0) == (500e12, "--peak-tflops")
    assert bench.peak_flops(torch.device("cpu"), None)[0] is None


def test_sd35m_config_matches_the_lora_layout_facts(bench):
    """The benchmark's SD3.5-M config gives the authors' adapter layout (382 tensors, 18.78 M per role)."""
    from diffusers import SD3Transformer2DModel

    from tdmr1.models.lora.presets import lora_settings, reference_layout

    layout = reference_layout(SD3Transformer2DModel, bench.SD35M, lora_settings("sd3-authors"))
    assert len(layout) == 382 and sum(a * b for _, (a, b) in layout) == 18_776_064
