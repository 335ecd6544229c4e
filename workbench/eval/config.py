"""What ``workbench eval`` (and :func:`workbench.eval.evaluate.evaluate_models`) measures, and how: the sections and
:class:`EvalConfig`, whose fields the CLI maps one to one (workbench/eval/cli.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.eval.completion import CompletionSettings, generation_preset
from workbench.eval.loglikelihood import LoglikelihoodConfig
from workbench.eval.utility import BENCHMARKS

__all__ = ["ALL_SECTIONS", "DEFAULT_SECTIONS", "EvalConfig", "GROUND_TRUTH_SECTIONS"]


def _help(text: str, **argparse_kwargs: Any) -> dict:
    """A field's metadata: its help, and what else the command line needs (choices, aliases; see
    transformers.HfArgumentParser, which workbench/eval/cli.py uses to map the fields to flags)."""
    return {"help": text, **argparse_kwargs}


ALL_SECTIONS = (
    "probes",
    "collateral",
    "paraphrase",
    "priming",
    "completion",
    "utility",
    "perplexity",
    # the field's measures (workbench/eval/ground_truth.py), each where the pack has its files
    "trivia",
    "qa",
    "retain_qa",
    "knowmem",
    "verbmem",
    "mia",
    "lm_eval",
)
DEFAULT_SECTIONS = ALL_SECTIONS[:-1]  # lm-eval needs the optional package and usually the internet
GROUND_TRUTH_SECTIONS = ("trivia", "qa", "retain_qa", "knowmem", "verbmem", "mia")
ALL_SECTIONS += ("adversarial", "relearn", "residual", "quantize")  # attacks, on request (workbench/eval/attacks.py)


@dataclass
class EvalConfig:
    """What `evaluate_models` measures, and how."""

    pack: str | None = field(
        default="harry_potter",
        metadata=_help("pack name or folder with the probes ('none' or None: no familiarity measures)"),
    )
    sections: tuple[str, ...] | None = field(
        default=None,
        metadata=_help(
            "measures to run, comma-separated on the command line (default: all that the pack and data allow, without "
            f"lm_eval unless lm-eval tasks are given): {','.join(ALL_SECTIONS)}"
        ),
    )
    splits: tuple[str, ...] = field(default=("dev", "heldout"), metadata=_help("probe splits to evaluate"))
    probe_limit: int | None = field(
        default=None,
        metadata=_help("first N probes of each probe file, after the split filter (None/'all': every probe)"),
    )
    tasks: tuple[str, ...] = field(
        default=tuple(BENCHMARKS),
        metadata=_help("multiple-choice benchmarks: names in evaldata_dir or JSONL paths (default: the seven)"),
    )
    evaldata_dir: str | None = field(
        default=None,
        metadata=_help(
            "folder of the benchmark files (default $WORKBENCH_EVALDATA, else the subsets shipped in workbench/evaldata)",
            aliases=["--evaldata"],
        ),
    )
    limit: int | None = field(default=500, metadata=_help("items per benchmark (None/'all': every item)"))
    ppl_text: str | None = field(
        default=None,
        metadata=_help(
            "text file for perplexity (default: wikitext2_test_raw.txt in evaldata_dir); a named file must exist"
        ),
    )
    ppl_max_tokens: int | None = field(
        default=20000, metadata=_help("tokens of the perplexity text to score (None/'all': every token)")
    )
    ppl_max_length: int = field(default=1024, metadata=_help("perplexity window in tokens"))
    ppl_stride: int = field(default=512, metadata=_help("new tokens scored per perplexity window"))
    batch_size: int = field(default=16, metadata=_help("sequences per forward pass"))
    max_batch_tokens: int = field(default=32768, metadata=_help("rows x padded length per forward pass"))
    padding_side: str = field(
        default="left",
        metadata=_help(
            "padding of scoring batches: 'left' (logits only where needed) or 'right'", choices=("left", "right")
        ),
    )
    judge: str = field(default="keyword", metadata=_help("completion judge", choices=("keyword", "openai", "hf")))
    judge_url: str | None = field(
        default=None, metadata=_help("OpenAI-compatible endpoint for judge 'openai' (e.g. http://127.0.0.1:8000/v1)")
    )
    judge_model: str | None = field(
        default=None, metadata=_help("model name at the endpoint, or a chat model spec for judge 'hf'")
    )
    judge_api_key_env: str = field(
        default="OPENAI_API_KEY", metadata=_help("environment variable holding the endpoint's key")
    )
    max_new_tokens: int = field(default=48, metadata=_help("tokens per completion"))
    greedy: bool = field(default=True, metadata=_help("one greedy completion per prompt (--no-greedy: none)"))
    samples: int = field(default=2, metadata=_help("sampled completions per prompt (besides the greedy one)"))
    temperature: float = field(default=1.0, metadata=_help("sampling temperature"))
    top_p: float = field(default=0.95, metadata=_help("sampling nucleus"))
    seed: int = field(default=0, metadata=_help("seed for sampling and the priming passage"))
    gen_batch_size: int = field(default=16, metadata=_help("prompts per generate() call"))
    priming_chars: int = field(default=600, metadata=_help("longest priming passage in characters"))
    priming_text: str | None = field(
        default=None,
        metadata=_help(
            "the priming passage (on the command line: a file holding it; default: cut from the pack's corpus)"
        ),
    )
    lm_eval_tasks: tuple[str, ...] = field(
        default=(), metadata=_help("lm-evaluation-harness task names (adds section lm_eval)")
    )
    lm_eval_include: str | None = field(default=None, metadata=_help("folder of extra lm-eval task YAMLs"))
    lm_eval_limit: int | None = field(default=None, metadata=_help("items per lm-eval task (None/'all': every item)"))
    device: str | None = field(
        default=None, metadata=_help("torch device for models given as specs (default: cuda if available, else cpu)")
    )
    dtype: str | None = field(
        default=None, metadata=_help("dtype for models given as specs: float32, bfloat16, float16 or auto")
    )
    resume: bool = field(
        default=True, metadata=_help("reuse finished units in <out>/partial (--no-resume: recompute everything)")
    )
    formats: tuple[str, ...] = field(default=("csv", "parquet"), metadata=_help("table formats written: csv, parquet"))
    figures: bool = field(default=True, metadata=_help("write plotly HTML figures (--no-figures: none)"))
    progress: bool = field(default=True, metadata=_help("progress bars (--no-progress or --quiet: none)"))
    top_k: int = field(default=0, metadata=_help("sampling: only the k most likely tokens (0: no limit)"))
    generation_preset: str | None = field(
        default=None,
        metadata=_help(
            "named completion settings that replace max_new_tokens, greedy, samples, temperature, top_p and "
            "top_k: 'authors' (20 new tokens, temperature 1, top-k 5, 5 samples)",
            choices=("authors",),
        ),
    )
    judge_rubric: str | None = field(
        default=None,
        metadata=_help(
            "LLM judge instruction: 'workbench' (default, SCORE: n), 'authors' (the authors' grading "
            "instruction, MODEL_FAMILIARITY: X/3) or a template file with {prompt} and {completion}"
        ),
    )
    reference: str | None = field(
        default=None,
        metadata=_help(
            "label of the evaluated model that never saw the target (e.g. the baseline of an implanted target): forget "
            "quality and PrivLeak compare every model with it; without one they say 'needs a reference model'"
        ),
    )
    qa_max_new_tokens: int = field(
        default=32,
        metadata=_help("tokens of a greedy answer to a question (sections knowmem and retain_qa; MUSE uses 32)"),
    )
    verbmem_prompt_tokens: int = field(default=32, metadata=_help("verbmem: tokens of each corpus prefix"))
    verbmem_new_tokens: int = field(
        default=64, metadata=_help("verbmem: tokens generated and compared with the true continuation")
    )
    verbmem_limit: int | None = field(
        default=50, metadata=_help("verbmem: corpus prefixes, spread evenly over the corpus (None/'all': every one)")
    )
    mia_tokens: int = field(default=128, metadata=_help("mia: tokens per text sample of the corpus and the holdout"))
    mia_limit: int | None = field(
        default=100, metadata=_help("mia: samples per side, spread evenly (None/'all': every one)")
    )
    mia_k: float = field(
        default=0.4, metadata=_help("mia: the share of lowest-scoring tokens of Min-K and Min-K++ (MUSE: 0.4)")
    )
    attacks: Any = field(
        default=None,
        metadata=_help(
            "workbench.eval.attacks.AttackConfig for the attack sections (None: its defaults); on the command line "
            "each of its fields is a flag --attack-FIELD"
        ),
    )

    def loglik(self, desc: str) -> LoglikelihoodConfig:
        """The log-likelihood engine's settings for one measure (``desc``: its progress bar's label)."""
        return LoglikelihoodConfig(
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            padding_side=self.padding_side,
            progress=self.progress,
            desc=desc,
        )

    def text_settings(self):
        from workbench.eval.ground_truth import TextSettings

        return TextSettings(
            prompt_tokens=self.verbmem_prompt_tokens,
            new_tokens=self.verbmem_new_tokens,
            verbmem_limit=self.verbmem_limit,
            mia_tokens=self.mia_tokens,
            mia_limit=self.mia_limit,
            k=self.mia_k,
        )

    def generation(self) -> CompletionSettings:
        if self.generation_preset:
            return generation_preset(
                self.generation_preset, batch_size=self.gen_batch_size, seed=self.seed, progress=self.progress
            )
        return CompletionSettings(
            max_new_tokens=self.max_new_tokens,
            batch_size=self.gen_batch_size,
            greedy=self.greedy,
            samples=self.samples,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            progress=self.progress,
            top_k=self.top_k,
        )
