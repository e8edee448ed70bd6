"""One typed configuration for a run. The CLI and the Python API build the same object; the resolved
config is saved beside every run as run.json."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from tabcoder.errors import ConfigError

#: Sandbox walls a run may ask for (see tabcoder.sandbox.wall).
ISOLATIONS = ("auto", "strict", "reduced")

PROMPT_STYLES = ("chat", "single")
CAAFE_PROMPTS = ("none", "example", "usage")  # the solution-prompt variants of tabcoder.caafe
STRATEGIES = ("reflexion", "tree")
#: How improvement and repair steps ask the model for a change (see tabcoder.edits).
EDIT_FORMATS = ("search-replace", "functions", "whole")
POLICY_NAMES = ("greedy", "ucb")

#: The default wall time of a whole run (search, fold confirmation and the final refit): a user can predict it.
DEFAULT_TIME_BUDGET = 300.0
DEFAULT_BUDGET_TEXT = "5m"  # the same, as the command line shows it
#: Words that mean "no time budget" for --time-budget.
NO_BUDGET_WORDS = ("none", "off", "unlimited")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def parse_duration(text: str | float | int | None) -> float | None:
    """'90' / '90s' / '10m' / '1.5h' -> seconds. None, 'none', 'off' and 'unlimited' -> None."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    if text.strip().lower() in NO_BUDGET_WORDS:
        return None
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"Cannot read the duration {text!r}: write a number of seconds or e.g. '90s', '10m', '1h'.")
    return float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "").lower() or None]


@dataclass
class RunConfig:
    """Everything that decides what a run does. Defaults are the measured defaults for a 2-vCPU machine."""

    # model and generation
    model: str = "local"
    base_url: str | None = None
    temperature: float = 0.2
    top_p: float = 0.95
    max_tokens: int = 1536
    threads: int = 1
    n_ctx: int = 8192
    llm_timeout: float | None = None  # seconds per model call; None: the backend's default for its kind
    # strategy and budgets
    strategy: str = "tree"  # chosen by measurement: more model attempts per minute, drafts of different families
    iterations: int | None = None  # model attempts at most (None: as many as the time budget allows)
    time_budget: float | None = DEFAULT_TIME_BUDGET  # seconds for the whole run (None: no time limit)
    token_budget: int | None = None
    prompt_style: str = "chat"
    use_description: bool = True
    show_example: bool = True
    baseline: bool = True  # run the harness's baseline script as attempt 0 (no model call)
    edit_format: str = "functions"  # what an improvement or repair step asks for (chosen by measurement)
    caafe: int = 0  # CAAFE feature proposals before code generation (0: no CAAFE stage)
    caafe_prompt: str = "usage"  # how the solution prompt presents them: none | example | usage
    # tree search (strategy "tree") and parallel evaluation
    drafts: int = 5  # the baseline and one draft per model family (DRAFT_APPROACHES)
    debug_depth: int = 2
    breadth: int = 2
    policy: str = "greedy"
    workers: int = 1
    # choosing the final solution: re-score the best candidates on K folds (0 = trust the split)
    confirm_folds: int = 3
    confirm_top: int = 3
    # an ensemble of the confirmed attempts (greedy selection on the validation rows), chosen when it beats the
    # best single attempt on the confirmation folds
    ensemble: bool = True
    ensemble_size: int = 10
    # sandbox
    timeout: float = 300.0
    memory_mb: int = 4096        # all processes of an attempt together
    disk_mb: int = 2048          # bytes an attempt may add to its workspace
    isolation: str = "auto"      # auto: the strongest wall here; strict: bubblewrap or refuse; reduced: never bwrap
    # grading
    seed: int = 0
    valid_fraction: float = 0.2
    # task overrides (None = read from the task or infer)
    target: str | None = None
    id_column: str | None = None
    task_type: str | None = None
    metric: str | None = None
    positive_label: str | None = None
    test_path: Path | None = None
    # outputs
    out_dir: Path = field(default_factory=lambda: Path("runs"))
    answers: Path | None = None

    def __post_init__(self) -> None:
        self.time_budget = parse_duration(self.time_budget)
        timeout = parse_duration(self.timeout)
        if timeout is None:
            raise ConfigError("--timeout needs a value: seconds, or a duration such as 5m.")
        self.timeout = timeout
        self.llm_timeout = parse_duration(self.llm_timeout)
        self.out_dir = Path(self.out_dir)
        if self.answers is not None:
            self.answers = Path(self.answers)
        if self.test_path is not None:
            self.test_path = Path(self.test_path)
        self.validate()

    def validate(self) -> None:
        checks = [
            (self.iterations is None or self.iterations >= 1, f"--iterations must be at least 1 (got {self.iterations})."),
            (self.iterations is not None or self.time_budget is not None or self.token_budget is not None,
             "A run without a time budget needs another end: give --iterations N or --token-budget N "
             "(or a --time-budget such as 10m)."),
            (self.timeout > 0, f"--timeout must be positive (got {self.timeout})."),
            (self.llm_timeout is None or self.llm_timeout > 0, f"--llm-timeout must be positive (got {self.llm_timeout})."),
            (self.time_budget is None or self.time_budget > 0, "--time-budget must be positive."),
            (self.token_budget is None or self.token_budget > 0, "--token-budget must be positive."),
            (0.0 <= self.temperature <= 2.0, f"--temperature must be within [0, 2] (got {self.temperature})."),
            (0.0 < self.top_p <= 1.0, f"--top-p must be within (0, 1] (got {self.top_p})."),
            (self.max_tokens >= 64, f"--max-tokens must be at least 64 (got {self.max_tokens})."),
            (self.threads >= 1, f"--threads must be at least 1 (got {self.threads})."),
            (0.05 <= self.valid_fraction <= 0.5, f"--valid-fraction must be within [0.05, 0.5] (got {self.valid_fraction})."),
            (self.memory_mb >= 256, f"--memory-mb must be at least 256 (got {self.memory_mb})."),
            (self.disk_mb >= 16, f"--disk-mb must be at least 16 (got {self.disk_mb})."),
            (self.isolation in ISOLATIONS, f"--isolation must be one of {', '.join(ISOLATIONS)} (got {self.isolation!r})."),
            (self.prompt_style in PROMPT_STYLES, f"--prompt-style must be one of {', '.join(PROMPT_STYLES)} (got {self.prompt_style!r})."),
            (self.edit_format in EDIT_FORMATS,
             f"--edit-format must be one of {', '.join(EDIT_FORMATS)} (got {self.edit_format!r})."),
            (self.strategy in STRATEGIES, f"--strategy must be one of {', '.join(STRATEGIES)} (got {self.strategy!r})."),
            (self.drafts >= 1, f"--drafts must be at least 1 (got {self.drafts})."),
            (self.debug_depth >= 0, f"--debug-depth must be at least 0 (got {self.debug_depth})."),
            (self.breadth >= 1, f"--breadth must be at least 1 (got {self.breadth})."),
            (self.policy.split(":")[0].strip().lower() in POLICY_NAMES,
             f"--policy must be one of greedy, ucb, ucb:<c> (got {self.policy!r})."),
            (self.workers >= 1, f"--workers must be at least 1 (got {self.workers})."),
            (self.confirm_folds == 0 or self.confirm_folds >= 2,
             f"--confirm-folds must be 0 (off) or at least 2 (got {self.confirm_folds})."),
            (self.confirm_top >= 2, f"--confirm-top must be at least 2 (got {self.confirm_top})."),
            (self.ensemble_size >= 2, f"--ensemble-size must be at least 2 (got {self.ensemble_size})."),
        ]
        checks += [
            (self.caafe >= 0, f"--caafe must be 0 (off) or a number of feature proposals (got {self.caafe})."),
            (self.caafe_prompt in CAAFE_PROMPTS,
             f"--caafe-prompt must be one of {', '.join(CAAFE_PROMPTS)} (got {self.caafe_prompt!r})."),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown option(s): {', '.join(unknown)}. Known options: {', '.join(sorted(known))}.")
        return cls(**data)
