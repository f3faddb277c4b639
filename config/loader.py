"""Load settings from `edocgw.toml` and `EDOCGW_<SECTION>__<KEY>` variables.

Precedence: environment over file over defaults. Any problem becomes one `ConfigError` whose
text names the key, the value given and what was expected, so `edocgw` can print one line and
exit 2 instead of a traceback.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from config.settings import Settings

ENV_PREFIX = "EDOCGW_"
_file_data: ContextVar[dict[str, Any] | None] = ContextVar("edocgw_file_data", default=None)


class ConfigError(Exception):
    """A configuration problem, phrased as one line for the operator."""


class _TomlData(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_data.get() or {})


class _EnvSettings(BaseSettings, Settings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlData(settings_cls))


def config_path(explicit: str | None) -> Path | None:
    """The file to read: --config, else $EDOCGW_CONFIG, else ./edocgw.toml if present."""
    if explicit:
        return Path(explicit)
    if os.environ.get("EDOCGW_CONFIG"):
        return Path(os.environ["EDOCGW_CONFIG"])
    default = Path("edocgw.toml")
    return default if default.is_file() else None


def load_settings(path: str | Path | None = None, *, use_env: bool = True) -> Settings:
    """Read and validate the configuration; raise ConfigError with one line on any problem."""
    p = config_path(str(path) if path else None)
    data: dict[str, Any] = {}
    if p is not None:
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p}: not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {p}: cannot be read ({e})") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p}: not valid TOML ({e})") from None
    token = _file_data.set(data)
    try:
        if use_env:
            merged = _EnvSettings()
            return Settings.model_validate(merged.model_dump())
        return Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe(e, data)) from None
    finally:
        _file_data.reset(token)


def describe(err: ValidationError, data: dict[str, Any]) -> str:
    """The first validation error as `key = value: expected ...` (one line)."""
    first = err.errors(include_url=False)[0]
    loc = [str(x) for x in first["loc"]]
    key = ".".join(loc) or "(top level)"
    value = first.get("input")
    msg = str(first["msg"])
    if first["type"] == "extra_forbidden":
        expected = "unknown key (see edocgw.example.toml for the keys)"
    elif first["type"] == "missing":
        expected = "a value is required"
        value = None
    else:
        expected = msg.removeprefix("Value error, ").replace("Input should be", "expected")
    env_name = ENV_PREFIX + "__".join(x.upper() for x in loc[:2] if not x.isdigit())
    source = f" (from {env_name})" if env_name in os.environ else ""
    shown = "" if value is None else f" = {_short(value)}"
    return f"config error: {key}{shown}{source}: {expected}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
