"""What a deployment of prefect.yaml needs: its variables when deploying, its parameters at the start
of every flow run.

`prefect deploy` fills `{{ $CADPIPE_LIBRARY }}` with an empty text when the variable is not set,
and only warns. So the deployments that need variables check them in a build step
(`require_variables`, run by `prefect deploy` before it registers the deployment: the deploy
fails, naming each missing variable), and every batch run checks its own parameters first
(`check_parameters`): an empty source or output root fails the run at once, naming the variable
the deployment takes it from, before any file is read or written. A deployment's run never writes
into the repository: an output root inside the code folder is refused.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from pathlib import Path
from typing import Any

import yaml

from flows.outcomes import RunRefused

CODE_DIR = Path(__file__).resolve().parents[1]
PREFECT_YAML = CODE_DIR / "prefect.yaml"
_VARIABLE = re.compile(r"\{\{\s*\$(\w+)\s*\}\}")


def require_variables(names: list[str], timezones: list[str] | None = None) -> dict[str, str]:
    """A `prefect deploy` build step: every variable of `names` set and not blank (those of
    `timezones` also an IANA time zone); else ValueError naming them, which stops the deploy."""
    missing = [name for name in names if not os.environ.get(name, "").strip()]
    if missing:
        which = ", ".join(f"${name}" for name in missing)
        raise ValueError(
            f"{which} {'is' if len(missing) == 1 else 'are'} not set: this deployment takes its parameters "
            f"from {'it' if len(missing) == 1 else 'them'} (see README, Running with the Prefect UI); "
            "set them and run `prefect deploy` again"
        )
    for name in timezones or []:
        try:
            zoneinfo.ZoneInfo(os.environ[name].strip())
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"${name} = {os.environ[name]!r} is not a time zone (e.g. Europe/Berlin): {exc}") from None
    return {name: os.environ[name] for name in names}


def variables_of(deployment: str | None, parameter: str, prefect_yaml: Path = PREFECT_YAML) -> list[str]:
    """The environment variables prefect.yaml fills `parameter` of `deployment` from."""
    if not deployment or not prefect_yaml.is_file():
        return []
    try:
        spec = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    for entry in spec.get("deployments") or []:
        if isinstance(entry, dict) and entry.get("name") == deployment:
            value = (entry.get("parameters") or {}).get(parameter)
            return _VARIABLE.findall(yaml.safe_dump(value)) if value is not None else []
    return []


def _deployment_name() -> str | None:
    from prefect.runtime import deployment

    return deployment.name if deployment.id else None


def _empty(parameter: str, deployment: str | None) -> RunRefused:
    variables = variables_of(deployment, parameter.split("[")[0])
    if deployment and variables:
        where = " or ".join(f"${v}" for v in variables)
        cause = (
            f"the deployment {deployment} takes it from {where}, which was empty when it was deployed; "
            f"set {where} and run `prefect deploy` again, or set the parameter on the deployment"
        )
    elif deployment:
        cause = f"set it on the deployment {deployment}, or leave it out to take the config's value"
    else:
        cause = "give a path, or leave it out to take the config's value"
    return RunRefused(f"parameter {parameter} is empty: {cause}; nothing was read or written")


def check_parameters(sources: Any, out: Any) -> None:
    """Refuse a run whose `sources` or `out` is given but empty (RunRefused, exit code 2)."""
    deployment = _deployment_name()
    if sources is not None:
        if isinstance(sources, str) or not isinstance(sources, list):
            raise RunRefused(f"parameter sources must be a list of paths, not {sources!r}")
        for index, source in enumerate(sources):
            if not isinstance(source, str) or not source.strip():
                raise _empty(f"sources[{index}]", deployment)
    if out is not None and (not isinstance(out, str) or not out.strip()):
        raise _empty("out", deployment)


def check_output_root(out: Path) -> None:
    """A deployment's run never writes into the repository (the code folder it runs from)."""
    deployment = _deployment_name()
    if deployment is None:
        return
    real, code = os.path.realpath(out), os.path.realpath(CODE_DIR)
    if real == code or real.startswith(code.rstrip(os.sep) + os.sep):
        variables = variables_of(deployment, "out")
        how = f" (from ${variables[0]})" if variables else ""
        raise RunRefused(
            f"the output root {out} lies inside cadpipe's code folder {code}: a deployment's run never writes "
            f"into the repository; set the deployment {deployment}'s out parameter{how} to a folder of its own; "
            "nothing was read or written"
        )
