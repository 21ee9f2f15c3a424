"""Seeds, devices and per-purpose noise (gankd_utils.repro)."""
import pytest
import torch

from gankd_utils import repro
from gankd_utils.models import CondDCGANGenerator
from gankd_utils.models.layers import dcgan_init


def test_same_seed_same_images():
    G1 = dcgan_init(CondDCGANGenerator(32), 3)
    G2 = dcgan_init(CondDCGANGenerator(32), 3)
    y = torch.arange(10)
    z1 = repro.noise(10, 100, seed=7, purpose="fixed")
    z2 = repro.noise(10, 100, seed=7, purpose="fixed")
    assert torch.equal(G1.eval()(z1, y), G2.eval()(z2, y))
    assert not torch.equal(z1, repro.noise(10, 100, seed=7, purpose="eval"))
    assert not torch.equal(z1, repro.noise(10, 100, seed=8, purpose="fixed"))


def test_purpose_seeds_are_stable_and_apart():
    assert repro.purpose_seed(0, "train") == repro.purpose_seed(0, "train") < 2 ** 63
    assert len({repro.purpose_seed(s, p) for s in (0, 1) for p in ("train", "fixed", 3)}) == 6
    g = repro.generator(5, "x")
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=repro.generator(5, "x")))
    assert repro.labels(50, 10, 0).max() < 10 and torch.equal(repro.labels(5, 10, 0), repro.labels(5, 10, 0))


def test_latents_cycle_layout():
    z, y = repro.latents(7, 4, 3, seed=2, purpose="p")
    assert torch.equal(z, repro.noise(7, 4, 2, "p"))  # the same z as noise(): every caller sees one stream
    assert y.tolist() == [0, 1, 2, 0, 1, 2, 0] and y.dtype == torch.int64
    _, y = repro.latents(5, 4, 10, classes=[7, 2])
    assert y.tolist() == [7, 2, 7, 2, 7]


def test_latents_rows_layout():
    _, y = repro.latents(6, 4, 3, layout="rows")
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    _, y = repro.latents(7, 4, 3, layout="rows")  # not a multiple: rows of ceil(n / k), cut at n
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 2]
    _, y = repro.latents(4, 4, 10, classes=[5], layout="rows")
    assert y.tolist() == [5, 5, 5, 5]
    _, y = repro.latents(2, 4, 3, layout="rows")  # fewer images than classes
    assert y.tolist() == [0, 1]


def test_latents_unconditional_and_errors():
    z, y = repro.latents(3, 8, 0, seed=1)
    assert y is None and z.shape == (3, 8)
    z2, y2 = repro.latents(3, 8, 0, seed=torch.Generator().manual_seed(1))
    assert y2 is None and z2.shape == (3, 8)
    with pytest.raises(ValueError, match="layout must be 'cycle' or 'rows'"):
        repro.latents(3, 8, 10, layout="grid")
    assert repro.class_grid_labels(3, 2).tolist() == [0, 0, 1, 1, 2, 2]


def test_get_device():
    assert repro.get_device("cpu") == torch.device("cpu")
    assert repro.get_device(torch.device("cpu")) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert repro.get_device("auto").type in ("cpu", "mps")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            repro.get_device("cuda")
    for bad in ("gpu", "GPU0", ""):
        with pytest.raises(ValueError, match=f"DEVICE={bad!r} is not a device: use 'auto' .*'cpu' or 'cuda'") as e:
            repro.get_device(bad)
        assert "Expected one of" not in str(e.value)  # not torch's list of every device type


def test_describe_device_names_the_machine(monkeypatch):
    cpu = repro.describe_device("cpu")
    assert cpu.startswith("cpu (") and cpu.endswith(" cores)") and "unknown" not in cpu
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Some GPU #{i}")
    assert repro.describe_device(torch.device("cuda", 1)) == "cuda:1 (Some GPU #1)"


def test_cpu_bf16_reads_the_flags_of_the_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    # an AMD EPYC without AVX512-BF16: AVX-512 itself is no help
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n\n"
                    "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert repro.cpu_bf16(info) is False
    info.write_text("model name\t: Intel(R) Xeon(R)\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert repro.cpu_bf16(info) is True
    info.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")  # an Arm server
    assert repro.cpu_bf16(info) is True
    info.write_text("processor\t: 0\nmodel name\t: something\n")  # no flags: it cannot tell
    assert repro.cpu_bf16(info) is None
    assert repro.cpu_bf16(tmp_path / "absent") is None
