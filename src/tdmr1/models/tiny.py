"""Tiny random SD3 and Z-Image pipelines of the real diffusers classes, built offline, to run the whole scale path
on a CPU: ``python -m tdmr1.models.tiny sd3 /tmp/tiny_sd3`` writes a folder ``tdmr1 train --model`` accepts."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

WORDS = (
    "a an the photo of one two three four red green blue yellow purple orange black white cube sphere "
    "circle square triangle star dog cat car cup sign that says left right above below next to and with on"
).split()

QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
)


def _byte_chars() -> list[str]:
    """GPT-2 / CLIP byte-to-unicode alphabet."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return sorted({chr(c) for c in cs})


def clip_tokenizer():
    """A CLIP BPE tokenizer over single byte-characters (no merges), model_max_length 77."""
    from transformers import CLIPTokenizer

    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def word_tokenizer(specials: list[str], eos: str | None, max_length: int, chat_template: str | None = None):
    """A WordLevel fast tokenizer over :data:`WORDS` (unknown words -> unk)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(specials)}
    for w in WORDS + ["user", "assistant", "system"]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if eos is not None:
        tok.post_processor = processors.TemplateProcessing(single=f"$A {eos}", special_tokens=[(eos, vocab[eos])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token=eos, model_max_length=max_length
    )
    fast.add_special_tokens({"additional_special_tokens": [s for s in specials if s.startswith("<|")]})
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def tiny_vae(latent_channels: int = 16, scaling: float = 1.5305, shift: float = 0.0609):
    """AutoencoderKL with 4 levels (8x down-sampling, as the real ones) and 8 channels."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=scaling,
        shift_factor=shift,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def tiny_sd3_transformer(seed: int = 0, channels: int = 4, sample_size: int = 8, pooled_dim: int = 16):
    """A tiny random SD3Transformer2DModel (2 blocks, the first with dual attention, as SD3.5)."""
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(seed)
    return SD3Transformer2DModel(
        sample_size=sample_size,
        patch_size=2,
        in_channels=channels,
        out_channels=channels,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=32,
        caption_projection_dim=32,
        pooled_projection_dim=pooled_dim,
        pos_embed_max_size=16,
        dual_attention_layers=(0,),
    )


def tiny_sd3_pipeline(seed: int = 0, resolution: int = 64):
    """A StableDiffusion3Pipeline with ~1 M random parameters (one dual-attention block, like SD3.5-M)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tok = clip_tokenizer()
    bos, eos = tok.convert_tokens_to_ids("<|startoftext|>"), tok.convert_tokens_to_ids("<|endoftext|>")

    def clip():
        cfg = CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=16,
            intermediate_size=32,
            projection_dim=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=eos,
        )
        return CLIPTextModelWithProjection(cfg)

    t5_tok = word_tokenizer(["<pad>", "</s>", "<unk>"], "</s>", 128)
    t5 = T5EncoderModel(
        T5Config(vocab_size=len(t5_tok), d_model=32, d_kv=8, d_ff=32, num_layers=2, num_heads=4, dropout_rate=0.0)
    )
    transformer = SD3Transformer2DModel(
        sample_size=resolution // 8,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=32,
        caption_projection_dim=32,
        pooled_projection_dim=32,
        pos_embed_max_size=16,
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=tiny_vae(16, 1.5305, 0.0609),
        text_encoder=clip(),
        tokenizer=tok,
        text_encoder_2=clip(),
        tokenizer_2=clip_tokenizer(),
        text_encoder_3=t5,
        tokenizer_3=t5_tok,
    )


def tiny_zimage_pipeline(seed: int = 0):
    """A ZImagePipeline with a tiny ZImageTransformer2DModel, Qwen3 encoder and VAE (pads filled)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(seed)
    tok = word_tokenizer(["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"], None, 512, QWEN_TEMPLATE)
    qwen = Qwen3Model(
        Qwen3Config(
            vocab_size=len(tok),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=512,
        )
    )
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        cap_feat_dim=16,
        axes_dims=[4, 6, 6],
        axes_lens=[1024, 64, 64],
    )
    with torch.no_grad():  # older diffusers leave these uninitialised (torch.empty): make them real numbers
        transformer.x_pad_token.normal_(0, 0.02)
        transformer.cap_pad_token.normal_(0, 0.02)
    return ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=tiny_vae(16, 0.3611, 0.1159),
        text_encoder=qwen,
        tokenizer=tok,
        transformer=transformer,
    )


def save_tiny_pipeline(kind: str, path: str | Path, seed: int = 0) -> Path:
    """Write a tiny ``sd3`` or ``zimage`` pipeline folder (``save_pretrained``) and return its path."""
    builders = {"sd3": tiny_sd3_pipeline, "zimage": tiny_zimage_pipeline}
    if kind not in builders:
        raise ValueError(f"kind must be one of {', '.join(builders)}, got {kind!r}")
    path = Path(path)
    builders[kind](seed=seed).save_pretrained(str(path))
    return path


if __name__ == "__main__":  # python -m tdmr1.models.tiny sd3|zimage FOLDER
    print(save_tiny_pipeline(sys.argv[1], sys.argv[2]))
