"""model.compile, model.channels_last and optimizer.fused."""

import pytest
import torch
from conftest import compose_train

from mmrun.errors import ConfigError
from mmrun.model import MultimodalModule


@pytest.fixture(scope="module")
def data(small_data):
    return small_data


def _batch(data):
    return next(iter(data.train_dataloader()))


def test_channels_last_keeps_the_outputs_and_converts_conv_weights(data):
    torch.manual_seed(0)
    plain = MultimodalModule(compose_train([]), data.spec).eval()
    nhwc = MultimodalModule(compose_train(["model.channels_last=true"]), data.spec).eval()
    nhwc.load_state_dict(plain.state_dict())
    convs = [m.weight for m in nhwc.encoders["image"].modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not plain.channels_last and nhwc.channels_last == ["image"]
    batch = _batch(data)
    torch.testing.assert_close(nhwc(batch), plain(batch), rtol=1e-4, atol=1e-5)


def test_compile_wraps_the_forward_pass_without_renaming_parameters(data):
    plain = MultimodalModule(compose_train([]), data.spec)
    compiled = MultimodalModule(compose_train(["model.compile=true"]), data.spec)
    assert compiled._compiled_call_impl is not None and plain._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(plain.state_dict())  # checkpoints stay interchangeable


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_fused_optimizer(optimizer, data):
    forced = MultimodalModule(compose_train([f"optimizer={optimizer}", "optimizer.fused=true"]), data.spec)
    assert forced.build_optimizer().defaults["fused"] is True
    auto = MultimodalModule(compose_train([f"optimizer={optimizer}"]), data.spec)
    assert not auto.build_optimizer().defaults.get("fused")  # auto: fused only on CUDA
    wrong = MultimodalModule(compose_train([f"optimizer={optimizer}", "optimizer.fused=yes"]), data.spec)
    with pytest.raises(ConfigError, match="optimizer.fused=yes"):
        wrong.build_optimizer()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_fused_on_cuda(data):
    model = MultimodalModule(compose_train([]), data.spec).cuda()
    assert model.build_optimizer().defaults["fused"] is True
