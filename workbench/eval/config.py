"""What ``workbench eval`` (and :func:`workbench.eval.runner.evaluate_models`) measures, and how: the sections and
:class:`EvalConfig`, whose fields the CLI maps one to one (workbench/eval/cli.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.eval.completion import GenerationConfig, generation_preset
from workbench.eval.scoring import ScoringConfig
from workbench.eval.utility import BENCHMARKS

__all__ = ["ALL_SECTIONS", "DEFAULT_SECTIONS", "EvalConfig"]

ALL_SECTIONS = ("probes", "collateral", "paraphrase", "priming", "completion", "utility", "perplexity", "lm_eval")
DEFAULT_SECTIONS = ALL_SECTIONS[:-1]  # lm-eval needs the optional package and usually the internet
ALL_SECTIONS += ("adversarial", "relearn", "residual")  # attacks, on request (workbench/eval/attacks.py)


@dataclass
class EvalConfig:
    """What `evaluate_models` measures, and how."""

    pack: str | None = "harry_potter"  # pack name or folder with the probes (None: no familiarity measures)
    sections: tuple[str, ...] | None = None  # measures to run (None: all the pack and data allow; lm_eval if tasks given)
    splits: tuple[str, ...] = ("dev", "heldout")  # probe splits to evaluate
    probe_limit: int | None = None  # first N probes of each probe file (after the split filter; None: all)
    tasks: tuple[str, ...] = tuple(BENCHMARKS)  # multiple-choice benchmarks: names in evaldata_dir or JSONL paths
    evaldata_dir: str | None = None  # folder of the benchmark files (default: the shipped workbench/evaldata)
    limit: int | None = 500  # items per benchmark (None: all)
    ppl_text: str | None = None  # text file for perplexity (default: wikitext2_test_raw.txt in evaldata_dir)
    ppl_max_tokens: int | None = 20000  # tokens of the perplexity text to score (None: all)
    ppl_max_length: int = 1024  # perplexity window
    ppl_stride: int = 512  # perplexity stride
    batch_size: int = 16  # sequences per forward pass
    max_batch_tokens: int = 32768  # rows x padded length per forward pass
    padding_side: str = "left"  # padding of scoring batches
    judge: str = "keyword"  # completion judge: 'keyword', 'openai' or 'hf'
    judge_url: str | None = None  # OpenAI-compatible endpoint (judge 'openai')
    judge_model: str | None = None  # model name at the endpoint, or a model spec (judge 'hf')
    judge_api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the endpoint's key
    max_new_tokens: int = 48  # tokens per completion
    greedy: bool = True  # one greedy completion per prompt
    samples: int = 2  # sampled completions per prompt
    temperature: float = 1.0  # sampling temperature
    top_p: float = 0.95  # sampling nucleus
    seed: int = 0  # sampling seed
    gen_batch_size: int = 16  # prompts per generate() call
    priming_chars: int = 600  # longest priming passage
    priming_text: str | None = None  # priming passage (default: one cut from the pack's corpus)
    lm_eval_tasks: tuple[str, ...] = ()  # lm-evaluation-harness task names (section 'lm_eval')
    lm_eval_include: str | None = None  # folder of extra lm-eval task YAMLs
    lm_eval_limit: int | None = None  # items per lm-eval task
    device: str | None = None  # torch device for models given as specs
    dtype: str | None = None  # dtype for models given as specs
    resume: bool = True  # reuse finished units in <out>/partial
    formats: tuple[str, ...] = ("csv", "parquet")  # table formats written
    figures: bool = True  # write plotly HTML figures
    progress: bool = True  # tqdm bars
    top_k: int = field(default=0, metadata={"help": "sampling: only the k most likely tokens (0: no limit)"})
    generation_preset: str | None = field(default=None, metadata={
        "help": "named completion settings that replace max_new_tokens, greedy, samples, temperature, top_p and "
                "top_k: 'authors' (20 new tokens, temperature 1, top-k 5, 5 samples)"})
    judge_rubric: str | None = field(default=None, metadata={
        "help": "LLM judge instruction: 'workbench' (default, SCORE: n), 'authors' (the authors' grading "
                "instruction, MODEL_FAMILIARITY: X/3) or a template file with {prompt} and {completion}"})
    attacks: Any = None  # workbench.eval.attacks.AttackConfig for the attack sections (None: its defaults)

    def scoring(self, desc: str) -> ScoringConfig:
        return ScoringConfig(batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens,
                             padding_side=self.padding_side, progress=self.progress, desc=desc)

    def generation(self) -> GenerationConfig:
        if self.generation_preset:
            return generation_preset(self.generation_preset, batch_size=self.gen_batch_size, seed=self.seed,
                                     progress=self.progress)
        return GenerationConfig(max_new_tokens=self.max_new_tokens, batch_size=self.gen_batch_size, greedy=self.greedy,
                                samples=self.samples, temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                                progress=self.progress, top_k=self.top_k)
