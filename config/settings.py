"""The settings model of dicom-node.

Settings are built once, in the entry point, and passed down (see STYLE.md).
Nothing here reads the environment at import time.

Sources, highest priority first:

1. keyword arguments to :func:`load_settings` (used by tests and the demo),
2. environment variables ``DICOM_NODE_<KEY>``; nested keys are joined by
   ``__`` (``DICOM_NODE_ASSEMBLY__SETTLE_SECONDS=5``); lists and objects are
   given as JSON (``DICOM_NODE_ALLOWED_CALLING_AETS='["PACS"]'``),
3. the YAML file named by ``--config`` or ``DICOM_NODE_CONFIG``,
4. the defaults below.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

__all__ = [
    "AssemblySettings",
    "ConfigError",
    "DeliverySettings",
    "Destination",
    "JobSettings",
    "ModelSettings",
    "ResultSettings",
    "Settings",
    "load_settings",
    "validate_ae_title",
]

ENV_PREFIX = "DICOM_NODE_"
CONFIG_ENV = "DICOM_NODE_CONFIG"

# PS3.5 6.2: AE is up to 16 characters of the default repertoire, excluding
# backslash and control characters; leading and trailing spaces are not
# significant and an all-space value is not allowed.
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


class ConfigError(ValueError):
    """A configuration that cannot be used.

    ``problems`` holds one line per problem, each naming its key.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(problems))


def validate_ae_title(value: str) -> str:
    """Return ``value`` stripped if it is a legal AE title, else raise ``ValueError``."""
    stripped = value.strip()
    if not stripped:
        raise ValueError("AE title must not be empty or all spaces")
    if len(stripped) > 16:
        raise ValueError(f"AE title {stripped!r} is longer than 16 characters")
    if not _AE_RE.match(stripped):
        raise ValueError(
            f"AE title {stripped!r} has characters outside the DICOM default "
            "repertoire (no backslash or control characters)"
        )
    return stripped


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Destination(_Section):
    """A DICOM peer that results are sent to (C-STORE), or a DICOMweb STOW-RS service.

    A C-STORE destination needs ``ae_title``, ``host`` and ``port``; a destination
    with ``stow_url`` (the DICOMweb root, e.g. ``http://pacs:8042/dicom-web``) is
    sent to by STOW-RS and needs only its ``name``.
    """

    name: str = Field(min_length=1)
    ae_title: str | None = None
    host: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    stow_url: str | None = Field(default=None, pattern=r"^https?://")

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, value: str | None) -> str | None:
        return None if value is None else validate_ae_title(value)

    @model_validator(mode="after")
    def _complete(self) -> Destination:
        if self.stow_url is None:
            missing = [k for k in ("ae_title", "host", "port") if getattr(self, k) is None]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} required for a C-STORE destination "
                    "(or set stow_url for DICOMweb)"
                )
        return self


class AssemblySettings(_Section):
    """Study assembly timers, in seconds."""

    #: a series is quiet when no instance arrived for this long
    series_quiet_seconds: float = Field(default=10.0, gt=0)
    #: a study completes when all its series are quiet and nothing arrived for this long
    settle_seconds: float = Field(default=5.0, ge=0)
    #: a study that keeps receiving is completed anyway (and flagged) after this long
    forced_timeout_seconds: float = Field(default=600.0, gt=0)
    #: how often the assembler looks at open studies
    poll_seconds: float = Field(default=1.0, gt=0)


class NetworkSettings(_Section):
    """DICOM association limits and timeouts (seconds; 0 or null = none)."""

    max_associations: int = Field(default=10, ge=1, le=1000)
    network_timeout: float | None = Field(default=60.0)
    acse_timeout: float | None = Field(default=30.0)
    dimse_timeout: float | None = Field(default=60.0)
    #: 0 = unlimited; see BENCHMARKING.md (larger PDUs are faster)
    maximum_pdu_size: int = Field(default=0, ge=0)


class DeliverySettings(_Section):
    """Retry policy for results sent to destinations."""

    max_attempts: int = Field(default=12, ge=1)
    #: count warning statuses (0xB000 ...) from the PACS as delivered
    accept_warnings: bool = False
    backoff_initial_seconds: float = Field(default=10.0, gt=0)
    backoff_max_seconds: float = Field(default=3600.0, gt=0)


class JobSettings(_Section):
    """Retries, timeout and priorities of pipeline jobs (see docs/orchestration.md)."""

    #: a job that failed this many times is dead (a permanent error is dead at once)
    max_attempts: int = Field(default=3, ge=1)
    #: wait before the 2nd attempt; doubled per failure up to ``backoff_max_seconds``
    backoff_initial_seconds: float = Field(default=5.0, gt=0)
    backoff_max_seconds: float = Field(default=600.0, gt=0)
    #: a job running longer than this is taken to be lost and is run again
    timeout_seconds: float = Field(default=900.0, gt=0)
    #: priority of a pipeline's jobs when its routing rule sets none (higher runs first)
    priorities: dict[Literal["ldh", "sij"], int] = Field(default_factory=dict)
    #: load the routed pipelines' models when workers start, not on the first study
    preload_models: bool = True

    @model_validator(mode="after")
    def _backoff(self) -> JobSettings:
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError(
                f"backoff_max_seconds ({self.backoff_max_seconds:g}) is less than "
                f"backoff_initial_seconds ({self.backoff_initial_seconds:g})"
            )
        return self


class ResultSettings(_Section):
    """What the node writes besides the findings' SEG segments and the SR."""

    #: lumbar herniation segments as FRACTIONAL (probabilities) instead of BINARY
    fractional: bool = False
    #: also segment the anatomy the grade was read against (disc, dural sac, facets; sacrum, ilia)
    include_anatomy: bool = True
    #: the SIJ oedema segment, when a STIR was assessed
    include_oedema: bool = True
    #: Secondary Capture key images with the overlay burned in, for viewers without SEG/SR
    secondary_capture: bool = False
    #: an Encapsulated PDF report (Modality DOC)
    pdf: bool = False


class ModelSettings(_Section):
    """Which weights each pipeline loads; ``null`` = the bundled demo weights."""

    ldh_weights: Path | None = None
    levels_weights: Path | None = None
    sij_weights: Path | None = None
    #: flip test-time augmentation of the LDH and SIJ networks; ``null`` = as each weights card
    #: says (bundled: LDH on, SIJ off). On costs about twice the network time per study.
    flip_tta: bool | None = None


class Settings(BaseSettings):
    """All settings of a dicom-node process (see config/example.yaml)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    ae_title: str = "DICOM_NODE"
    host: str = "0.0.0.0"
    port: int = Field(default=11112, ge=0, le=65535)
    storage_dir: Path = Path("./var")
    database_url: str | None = None
    allowed_calling_aets: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    #: kept for DESIGN.md compatibility: the per-series quiet time
    study_quiet_seconds: float | None = Field(default=None, gt=0)
    destinations: list[Destination] = Field(default_factory=list)
    routing: list[dict[str, Any]] = Field(default_factory=list)
    executor: Literal["local", "celery"] = "local"
    #: the Celery broker when ``executor`` is ``celery`` (Redis or RabbitMQ)
    celery_broker_url: str = Field(default="redis://127.0.0.1:6379/0", pattern=r"^(redis|rediss|amqp|amqps)://")
    device: str = "auto"
    http_port: int = Field(default=8080, ge=0, le=65535)

    #: C-STORE answers 0xA700 when the store's file system has less free space
    min_free_disk_mb: int = Field(default=1024, ge=0)
    assembly: AssemblySettings = Field(default_factory=AssemblySettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    results: ResultSettings = Field(default_factory=ResultSettings)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False

    _ae = field_validator("ae_title")(validate_ae_title)

    @field_validator("allowed_calling_aets")
    @classmethod
    def _aets(cls, value: list[str]) -> list[str]:
        return [validate_ae_title(v) for v in value]

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError("must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.study_quiet_seconds is not None:
            self.assembly.series_quiet_seconds = self.study_quiet_seconds
        names = [d.name for d in self.destinations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"destinations: duplicate names {dupes}")
        return self

    @property
    def resolved_database_url(self) -> str:
        """``database_url``, or SQLite in ``storage_dir`` when it is not set."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.storage_dir / 'dicom-node.sqlite3').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _EnvSource(settings_cls), _YamlSource(settings_cls)


_yaml_data: ContextVar[dict[str, Any]] = ContextVar("_yaml_data", default={})
_environ: ContextVar[dict[str, str] | None] = ContextVar("_environ", default=None)


class _EnvSource(EnvSettingsSource):
    """``DICOM_NODE_*`` variables from the environment given to load_settings."""

    def _load_env_vars(self) -> Any:
        env = _environ.get()
        return parse_env_vars(
            os.environ if env is None else env,
            self.case_sensitive,
            self.env_ignore_empty,
            self.env_parse_none_str,
        )


class _YamlSource(PydanticBaseSettingsSource):
    """The YAML file's values, below the environment in priority."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return _yaml_data.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_data.get())


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"config file {path}: cannot read ({exc.strerror})"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"config file {path}: not valid YAML ({exc})"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"config file {path}: top level must be a mapping"])
    return data


def _check_writable(directory: Path) -> str | None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as exc:
        return f"storage_dir: {directory} is not writable ({exc.strerror})"
    return None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: dict[str, str] | None = None,
    check_paths: bool = True,
    **overrides: Any,
) -> Settings:
    """Build the settings from a YAML file, the environment and ``overrides``.

    Parameters
    ----------
    path
        The YAML file; when ``None``, ``DICOM_NODE_CONFIG`` names it, if set.
    environ
        The environment to read (default ``os.environ``).
    check_paths
        Also check that ``storage_dir`` can be created and written.
    **overrides
        Values that win over every other source.

    Raises
    ------
    ConfigError
        With one line per problem, each naming its key.
    """
    env = dict(os.environ if environ is None else environ)
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    data: dict[str, Any] = _read_yaml(Path(path)) if path is not None else {}
    env.pop(CONFIG_ENV, None)

    problems: list[str] = []
    settings: Settings | None = None
    token = _yaml_data.set(data)
    env_token = _environ.set(env)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors():
            # (a bad mapping key is located as "<key>.[key]": name the key alone)
            key = ".".join(str(p) for p in err["loc"] if p != "[key]") or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{key}: {msg}")
    finally:
        _yaml_data.reset(token)
        _environ.reset(env_token)
    if settings is not None and check_paths:
        problem = _check_writable(settings.storage_dir)
        if problem:
            problems.append(problem)
    if problems:
        raise ConfigError(problems)
    assert settings is not None
    return settings
