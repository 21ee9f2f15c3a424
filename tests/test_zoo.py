"""Every model of the walk, listed once (gankd_utils.zoo): entries, builds, training configs."""
import dataclasses
import math

import pytest
import torch

from gankd_utils import config, data, zoo
from gankd_utils.metrics import count_params
from gankd_utils.models import TinyGANDiscriminator, TinyGANGenerator


def test_mnist_zoo_is_consistent():
    entries = zoo.mnist_zoo()
    assert len(entries) == 10 and zoo.zoo("mnist").keys() == entries.keys()
    for name, e in entries.items():
        assert e.name == name and e.dataset == "mnist" and e.chapter == "03_mnist" and e.base == "train"
        if e.role == "kd":
            assert e.teacher in entries and entries[e.teacher].role == "teacher"
            assert e.kd in ("feature", "pixel", "distill") and e.recipe.get("kd") == e.kd
            assert zoo.is_kd_name(name) and zoo.scratch_twin(name) in entries  # its twin at equal budget
        else:
            assert e.kd == "none"
        assert zoo.family_teacher(entries, name) is not None
    # teachers come first: a KD student finds its teacher already trained
    order = list(entries)
    assert all(order.index(e.teacher) < order.index(n) for n, e in entries.items() if e.teacher)


def test_cifar10_zoo_sizes():
    entries = zoo.cifar10_zoo()
    s = config.settings("cifar10", "smoke")
    t = count_params(entries["cgan_teacher"].make_g(s))
    assert 3.5e6 < t < 5e6
    assert t / count_params(entries["cgan_student_xs_kd"].make_g(s)) >= 10
    assert entries["cgan_student_s_kd"].recipe["kd"] == "blackbox" and entries["cgan_student_s_kd"].teacher == "cgan_teacher"
    assert entries["cgan_student_s_scratch"].recipe.get("kd", "none") == "none"
    assert entries["cgan_teacher"].recipe["diffaug"] == zoo.DIFFAUG and entries["cgan_teacher"].recipe["ema_decay"]
    assert set(zoo.chapter_entries("04_cifar10", entries)) == {
        "cgan_teacher", "cgan_student_s_scratch", "cgan_student_s_kd", "cgan_student_xs_scratch", "cgan_student_xs_kd"}
    assert set(zoo.chapter_entries("05_tinygan", entries)) == {"tinygan_student"}
    with pytest.raises(ValueError, match="no models for dataset 'svhn'"):
        zoo.zoo("svhn")


def test_tinygan_student_is_an_entry_like_the_others():
    e = zoo.cifar10_zoo()["tinygan_student"]
    assert (e.role, e.kd, e.teacher, e.chapter, e.base, e.init) == ("kd", "blackbox", "cgan_teacher", "05_tinygan",
                                                                     "distill", "tinygan")
    s = config.settings("cifar10", "smoke")
    G, D = zoo.build(e, s)
    assert isinstance(G, TinyGANGenerator) and isinstance(D, TinyGANDiscriminator)
    assert G.hparams["ch"] == 8 and G.hparams["embed_dim"] == 16 and D.hparams["ch"] == 8  # the smoke widths
    assert (G.hparams["resolution"], G.n_classes, G.z_dim) == (32, 10, 128)
    full, _ = zoo.build(e, config.settings("cifar10", "full"))
    assert full.hparams["ch"] == 32 and full.hparams["embed_dim"] == 128  # TinyGAN's widths
    big = zoo.tinygan_entry(128, 128, 1000, dataset="imagenet", teacher="biggan", name="t128")
    Gb, Db = zoo.build(big, config.settings("cifar10", "smoke"))
    assert Gb.hparams["resolution"] == 128 and Gb.n_classes == 1000 and big.name == "t128"


def test_train_config_of_an_entry():
    s = config.settings("mnist", "smoke", seed=2)
    e = zoo.mnist_zoo()["cdcgan_c32_kd"]
    c = zoo.train_config(e, s)
    assert c.name == "cdcgan_c32_kd" and c.kd == "pixel" and c.w_pixel == config.COLUMBIA["w_pixel"]
    assert (c.n_train, c.batch_size, c.seed) == (512, 64, 2)  # the profile's sizes under the recipe
    kd = zoo.cifar10_zoo()["cgan_student_xs_kd"]
    c = zoo.train_config(kd, config.settings("cifar10", "smoke"))
    assert c.kd == "blackbox" and c.diffaug == zoo.DIFFAUG and c.n_critic == config.TINYGAN["n_critic"]
    assert c.batch_size == 8 and c.dataset == "cifar10"
    tg = zoo.train_config(zoo.cifar10_zoo()["tinygan_student"], config.settings("cifar10", "smoke", seed=4))
    assert tg.name == "tinygan_student" and tg.kd == "blackbox" and tg.dataset == "teacher_set"
    assert (tg.epochs, tg.batch_size, tg.n_critic, tg.log_every, tg.seed) == (1, 8, 2, 1, 4)
    with pytest.raises(ValueError, match="no training part"):
        zoo.train_config(e, config.settings("imagenet", "smoke"))


def test_build_is_reproducible_from_the_seed():
    s = config.settings("mnist", "smoke", seed=1)
    for e in (zoo.mnist_zoo()["cdcgan_c32_kd"], zoo.cifar10_zoo()["cgan_student_xs_kd"],
              zoo.cifar10_zoo()["tinygan_student"]):
        s_ = config.settings(e.dataset, "smoke", seed=1)
        (G1, D1), (G2, D2) = zoo.build(e, s_), zoo.build(e, s_)
        for a, b in ((G1, G2), (D1, D2)):
            assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
        G3, _ = zoo.build(e, dataclasses.replace(s_, seed=2))
        assert not all(torch.equal(x, y) for x, y in zip(G1.state_dict().values(), G3.state_dict().values()))
    assert s.seed == 1


def test_columbia_students_output_conv_starts_at_its_fan_in_scale():
    # DCGAN's N(0, 0.02) left the 4-channel output conv of c=32 near zero, and its weights moved in lockstep
    # (the four channels learnt one and the same map): 17% class accuracy from scratch in the full run
    entries, s = zoo.mnist_zoo(), config.settings("mnist", "smoke")
    for c in (64, 32):
        G, D = zoo.build(entries[f"cdcgan_c{c}_scratch"], s)
        w, bound = G.out.weight.detach(), (c // 8) ** -0.5
        assert w.abs().max() <= bound and w.abs().max() > bound / 4 and w.std() > 0.1
        assert len({round(float(v), 4) for v in w.flatten()}) == c // 8  # no two channels start alike
        first = G.body[0].weight.detach()  # every other layer keeps the DCGAN init
        assert abs(float(first.std()) - 0.02) < 0.002
        # the KD twin starts from the very same generator and critic
        G_kd, D_kd = zoo.build(entries[f"cdcgan_c{c}_kd"], s)
        for a, b in ((G, G_kd), (D, D_kd)):
            assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    teacher, _ = zoo.build(entries["cdcgan_c512_teacher"], s)  # the shipped teacher was trained from DCGAN's init
    assert abs(float(teacher.out.weight.detach().std()) - 0.02) < 0.005


@pytest.mark.parametrize("c", zoo.DISTILL_WIDTHS)
def test_the_distillation_only_student_is_its_columbia_twin_without_the_adversarial_term(c):
    entries, s = zoo.mnist_zoo(), config.settings("mnist", "full", 0)
    d, kd = entries[f"cdcgan_c{c}_distill"], entries[f"cdcgan_c{c}_kd"]
    assert d.kd == "distill" and d.teacher == kd.teacher and d.family == kd.family and d.init == kd.init
    cd, ck = zoo.train_config(d, s), zoo.train_config(kd, s)
    assert cd.w_adv == 0.0 and cd.w_pixel == ck.w_pixel == 1.0
    # everything else (data, budget, optimizer, seed) is the Columbia twin's
    assert dataclasses.replace(cd, name="x", kd="pixel", w_adv=1.0) == dataclasses.replace(ck, name="x")
    gd, _ = zoo.build(d, s)
    gk, _ = zoo.build(kd, s)
    assert all(torch.equal(a, b) for a, b in zip(gd.parameters(), gk.parameters()))  # the same start
    assert zoo.scratch_twin(f"cdcgan_c{c}_distill") == zoo.scratch_twin(f"cdcgan_c{c}_kd") == f"cdcgan_c{c}_scratch"
    assert zoo.is_kd_name(f"cdcgan_c{c}_distill@1") and not zoo.is_kd_name(f"cdcgan_c{c}_scratch@1")
    assert zoo.scratch_twin("cdcgan_c512_teacher") is None
    assert [n for n in entries if n.endswith("_distill")] == [f"cdcgan_c{w}_distill" for w in zoo.DISTILL_WIDTHS]


def test_kd_property_and_family_teacher():
    entries = zoo.mnist_zoo()
    assert zoo.family_teacher(entries, "iitgn_student_kd") == "iitgn_teacher"
    assert zoo.family_teacher(entries, "cdcgan_c64_scratch") == "cdcgan_c512_teacher"
    assert zoo.family_teacher(entries, "cdcgan_c512_teacher") == "cdcgan_c512_teacher"
    assert zoo.family_teacher(zoo.cifar10_zoo(), "tinygan_student") == "cgan_teacher"


def test_mnist_ablations_stay_out_of_the_walk_and_start_as_their_walk_twins():
    walk, abl = zoo.mnist_zoo(), zoo.mnist_ablations()
    assert set(abl) == {f"cdcgan_c32{tag}{suffix}" for tag in ("bias", "meanbias")
                        for suffix in ("_scratch", "_kd", "_distill")}
    assert zoo.zoo("mnist").keys() == walk.keys()  # chapter 03 and the stages train the walk alone
    assert zoo.zoo("mnist", ablations=True).keys() == walk.keys() | abl.keys()
    assert zoo.zoo("cifar10", ablations=True).keys() == zoo.cifar10_zoo().keys()
    s = config.settings("mnist", "full", 2)
    for name, e in abl.items():
        twin = walk[name.replace("c32meanbias", "c32").replace("c32bias", "c32")]
        assert (e.role, e.kd, e.teacher, e.chapter, e.init) == (twin.role, twin.kd, twin.teacher, twin.chapter, twin.init)
        assert zoo.is_kd_name(name) == zoo.is_kd_name(twin.name) and (e.role != "kd" or zoo.scratch_twin(name) in abl)
        assert zoo.train_config(e, s) == dataclasses.replace(zoo.train_config(twin, s), name=name)
        (G, D), (G0, D0) = zoo.build(e, s), zoo.build(twin, s)
        g, g0 = G.state_dict(), G0.state_dict()
        # the same start, weight for weight, plus a bias: at 0, or where tanh gives the data's mean pixel
        start = 0.0 if "meanbias" not in name else math.atanh(config.MNIST_MEAN_PIXEL)
        assert set(g) - set(g0) == {"out.bias"} and torch.equal(g["out.bias"], torch.full((1,), start))
        assert all(torch.equal(g[k], g0[k]) for k in g0)
        assert all(torch.equal(a, b) for a, b in zip(D.state_dict().values(), D0.state_dict().values()))
    G, _ = zoo.build(abl["cdcgan_c32meanbias_distill"], s)
    G.eval()  # with the output weights at 0, the mean-bias student draws the mean pixel everywhere
    with torch.no_grad():
        G.out.weight.zero_()
        x = G(torch.randn(2, 100), torch.tensor([3, 7]))
    assert torch.allclose(x, torch.full_like(x, config.MNIST_MEAN_PIXEL), atol=1e-6)


def test_out_bias_start_needs_a_bias():
    e = dataclasses.replace(zoo.mnist_zoo()["cdcgan_c32_scratch"], out_bias_start=-1.0)
    with pytest.raises(ValueError, match="no bias"):
        zoo.build(e, config.settings("mnist", "full", 0))


def test_mnist_mean_pixel_is_the_training_sets(mnist_train):
    x = data.to_float(mnist_train.images).double()
    assert len(x) == 60000 and abs(float(x.mean()) - config.MNIST_MEAN_PIXEL) < 1e-4
