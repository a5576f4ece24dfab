"""The catalogue of native transformers-5 hub LALMs: one ``Recipe`` per entry (data only, no behaviour).

Hub ids are the repositories where the transformers-native port lives (the ``-hf`` ones where the model's
authors publish one). Revisions stay ``unresolved`` until ``lalm-bench lock``. The chat strings are written out
so that ``lalm-bench models`` lists every template without loading anything; ``check_chat_template`` compares
them with the tokenizer's own template at load (``lalm-bench models`` marks them unverified until a copy of
that template has been checked, see ``benchmark.models.template_copies``).
"""

from __future__ import annotations

from benchmark.models.chat_templates import ChatFormat
from benchmark.models.hf_lalm import LoraSpec, Recipe

_QWEN_SYS = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
_OMNI_SYS = (
    "<|im_start|>system\nYou are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of "
    "perceiving auditory and visual inputs, as well as generating text and speech.<|im_end|>\n"
)
_QWEN_AUDIO = "<|audio_bos|><|AUDIO|><|audio_eos|>"
_QWEN3_AUDIO = "<|audio_start|><|audio_pad|><|audio_end|>"
_QWEN_FEATURES = ("input_features", "feature_attention_mask")  # Qwen processors' name for the mel mask
_CHATML_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
#: the Mistral instruct layout of mistral-common for ``[audio chunk, text chunk]``
_MISTRAL = ChatFormat(
    "<s>[INST]",
    "[BEGIN_AUDIO][AUDIO]",
    "[/INST]",
    bare_prefix="<s>",
    note="mistral-common instruct format; audio chunk precedes the text in the user turn",
    bare="turn",
)
_MISTRAL_NEEDS = ("mistral_common",)


def _chatml(system: str, speech: str, note: str = "") -> ChatFormat:
    """ChatML (Qwen decoders): system turn, user turn, assistant header; only the system and audio differ."""
    return ChatFormat(
        prefix=system + "<|im_start|>user\n", speech=speech, suffix=_CHATML_SUFFIX, note=note, bare="turn"
    )


# One entry per model: name, hub id, family, description, model class, chat format, then what differs
# from the defaults. Behaviour that data cannot express lives in the family's adapter (``hf_families``).
RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "qwen2-audio-7b-instruct",
            "Qwen/Qwen2-Audio-7B-Instruct",
            "qwen2-audio",
            "Qwen2-Audio-7B-Instruct: Whisper-large-v3 encoder + Qwen-7B, chat-tuned",
            "Qwen2AudioForConditionalGeneration",
            _chatml(
                _QWEN_SYS,
                "Audio 1: " + _QWEN_AUDIO,
                "chat template of the processor; speech line as its template writes it ('Audio 1: ...')",
            ),
            _QWEN_FEATURES,
        ),
        Recipe(
            "qwen2-audio-7b",
            "Qwen/Qwen2-Audio-7B",
            "qwen2-audio",
            "Qwen2-Audio-7B base (pretrained, no chat turn)",
            "Qwen2AudioForConditionalGeneration",
            ChatFormat(
                "",
                _QWEN_AUDIO,
                "",
                note="base model has no chat template: content then the instruction, "
                "as in its model card prompts",
                bare="input",
            ),
            _QWEN_FEATURES,
            asr_prompt="Detect the language and recognize the speech: <|en|>",
        ),
        Recipe(
            "qwen2.5-omni-7b",
            "Qwen/Qwen2.5-Omni-7B",
            "qwen-omni",
            "Qwen2.5-Omni-7B thinker only (talker and token2wav are not loaded)",
            "Qwen2_5OmniForConditionalGeneration",
            _chatml(_OMNI_SYS, _QWEN_AUDIO, "default Omni system prompt of the model card"),
            _QWEN_FEATURES,
            load_kwargs={"enable_audio_output": False},
            submodule="thinker",
            notes=("falls back to an audio-only processor when the full one needs torchvision",),
        ),
        Recipe(
            "qwen3-omni-30b-a3b-instruct",
            "Qwen/Qwen3-Omni-30B-A3B-Instruct",
            "qwen-omni",
            "Qwen3-Omni-30B-A3B-Instruct thinker only (MoE, 3B active; talker not built)",
            "Qwen3OmniMoeForConditionalGeneration",
            _chatml("", _QWEN3_AUDIO, "Qwen3 chat turn without a default system turn"),
            _QWEN_FEATURES,
            load_kwargs={"enable_audio_output": False},
            submodule="thinker",
            notes=(
                "the thinker (Qwen3OmniMoeThinkerForConditionalGeneration) is hooked; the talker is never built",
                "falls back to an audio-only processor when the full one needs torchvision",
            ),
        ),
        Recipe(
            "qwen3-asr-1.7b",
            "Qwen/Qwen3-ASR-1.7B-hf",
            "qwen3-asr",
            "Qwen3-ASR-1.7B (transformers port): AuT encoder + Qwen3-1.7B decoder",
            "Qwen3ASRForConditionalGeneration",
            _chatml(
                "<|im_start|>system\n<|im_end|>\n",
                _QWEN3_AUDIO,
                "ASR chat turn with its empty system (context) turn",
            ),
            asr_prompt="",
        ),
        Recipe(
            "qwen3-asr-0.6b",
            "Qwen/Qwen3-ASR-0.6B-hf",
            "qwen3-asr",
            "Qwen3-ASR-0.6B (transformers port): AuT encoder + Qwen3-0.6B decoder",
            "Qwen3ASRForConditionalGeneration",
            _chatml(
                "<|im_start|>system\n<|im_end|>\n",
                _QWEN3_AUDIO,
                "ASR chat turn with its empty system (context) turn",
            ),
            asr_prompt="",
        ),
        Recipe(
            "voxtral-mini-3b",
            "mistralai/Voxtral-Mini-3B-2507",
            "voxtral",
            "Voxtral-Mini-3B-2507: Whisper-style encoder + Ministral-3B decoder",
            "VoxtralForConditionalGeneration",
            _MISTRAL,
            ("input_features",),
            needs=_MISTRAL_NEEDS,
            extra="voxtral",
            notes=(
                "ids assembled by the adapter (VoxtralProcessor refuses [AUDIO] in text); the real tokenizer "
                "is mistral-common's (the 'voxtral' extra)",
            ),
        ),
        Recipe(
            "voxtral-small-24b",
            "mistralai/Voxtral-Small-24B-2507",
            "voxtral",
            "Voxtral-Small-24B-2507: Whisper-style encoder + Mistral-Small-3.1-24B decoder",
            "VoxtralForConditionalGeneration",
            _MISTRAL,
            ("input_features",),
            needs=_MISTRAL_NEEDS,
            extra="voxtral",
            notes=("same layout as voxtral-mini-3b; the real tokenizer is mistral-common's",),
        ),
        Recipe(
            "voxtral-mini-4b-realtime",
            "mistralai/Voxtral-Mini-4B-Realtime-2602",
            "voxtral-realtime",
            "Voxtral-Mini-4B-Realtime-2602: causal streaming encoder whose frames are added to the decoder's "
            "token embeddings (speech only)",
            "VoxtralRealtimeForConditionalGeneration",
            ChatFormat(
                "",
                "",
                "",
                note="no chat turn and no text input: the model reads mistral-common's offline transcription "
                "request, one audio frame added to each position; both templates are that request",
                bare="input",
            ),
            ("input_features",),
            modalities=("speech",),
            needs=_MISTRAL_NEEDS,
            extra="voxtral",
            asr_prompt="",
        ),
        Recipe(
            "granite-speech-3.3-2b",
            "ibm-granite/granite-speech-3.3-2b",
            "granite-speech",
            "Granite-Speech-3.3-2B: conformer encoder + Q-former projector + Granite-3.3-2B (speech LoRA "
            "merged at load)",
            "GraniteSpeechForConditionalGeneration",
            ChatFormat(
                "<|start_of_role|>user<|end_of_role|>",
                "<|audio|>",
                "<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>",
                note="no system turn: the tokenizer's default one inserts today's date, which would change "
                "the ids daily",
                bare="turn",
            ),
            lora=LoraSpec(adapter_name="default"),
            needs=("peft",),
            extra="lora",
            asr_prompt="can you transcribe the speech into a written format?",
            notes=(
                "log-mel features computed in torch (GraniteLogMel; no torchaudio wheel for torch 2.13), "
                "audio encoded one clip at a time (the conformer has no padding mask)",
                "the speech LoRA (repo root) is merged into the decoder at load and so applies to text inputs too",
            ),
        ),
        Recipe(
            "phi-4-multimodal",
            "microsoft/Phi-4-multimodal-instruct",
            "phi4-multimodal",
            "Phi-4-multimodal-instruct (native transformers 5 port) with its speech LoRA merged",
            "Phi4MultimodalForCausalLM",
            ChatFormat(
                "<|user|>",
                "<|audio|>",
                "<|end|><|assistant|>",
                note="the placeholder is the processor's own audio token (replaced at load if it differs)",
                bare="turn",
            ),
            ("audio_input_features", "audio_embed_sizes"),
            lora=LoraSpec(adapter_name="speech", subfolder="speech-lora"),
            needs=("peft",),
            extra="lora",
            notes=(
                "the native port needs the converted revision of the hub repo (lalm-bench lock pins it)",
                "the speech-lora adapter is loaded, activated and merged at load; it applies to text inputs too",
            ),
        ),
        Recipe(
            "gemma-3n-e4b",
            "google/gemma-3n-E4B-it",
            "gemma3n",
            "Gemma-3n-E4B-it: USM audio encoder + Gemma-3n decoder (AltUp streams, per-layer embeddings)",
            "Gemma3nForConditionalGeneration",
            ChatFormat(
                "<bos><start_of_turn>user\n",
                "<audio_soft_token>",
                "<end_of_turn>\n<start_of_turn>model\n",
                bare_prefix="<bos>",
                bare="turn",
            ),
            needs=("timm",),
            extra="gemma3n",
            notes=(
                "blocks carry 4 AltUp streams; each block is read as the model's own collapse of them before "
                "its final norm (see Gemma3nAdapter); its vision tower needs timm (the 'gemma3n' extra)",
            ),
        ),
        Recipe(
            "audio-flamingo-3",
            "nvidia/audio-flamingo-3-hf",
            "audioflamingo3",
            "Audio Flamingo 3 (transformers port): AF-Whisper encoder + Qwen2.5-7B",
            "AudioFlamingo3ForConditionalGeneration",
            _chatml(_QWEN_SYS, "<sound>"),
            notes=("hub id as in transformers' audioflamingo3 docs",),
            asr_prompt="Transcribe the input speech.",
        ),
        Recipe(
            "audio-flamingo-next",
            "nvidia/audio-flamingo-next-hf",
            "audioflamingo3",
            "Audio Flamingo Next (transformers port; architecture of Music Flamingo): AF-Whisper encoder + "
            "Qwen2.5-7B, up to 30 min of audio",
            "AudioFlamingoNextForConditionalGeneration",
            _chatml(_QWEN_SYS, "<sound>"),
            since="a transformers release with AudioFlamingoNext (huggingface/transformers#44830); 5.24.0 lacks it",
            asr_prompt="Transcribe the input speech.",
        ),
        Recipe(
            "glm-asr-nano",
            "zai-org/GLM-ASR-Nano-2512",
            "glm-asr",
            "GLM-ASR-Nano-2512: Whisper-style encoder + Llama-style 1.5B decoder",
            "GlmAsrForConditionalGeneration",
            ChatFormat(
                "[gMASK]<sop><|user|>\n",
                "<|begin_of_audio|><|pad|><|end_of_audio|>",
                "<|assistant|>\n",
                note="GLM chat turn as the processor's transcription request builds it",
                bare="turn",
            ),
            asr_prompt="Please transcribe this audio into text",
        ),
    )
}
