"""Command lines of the verbs beyond training (`cnnlab <verb> key=value ...`).

Each verb has its own small config, `conf/<verb>.yaml`, composed with Hydra's compose API
rather than `@hydra.main`: a verb that reads runs must not create a run directory of its
own, change logging or refuse to start because of Hydra's output dir. Arguments keep
Hydra's override grammar (`key=value`, `+key=value`, lists, quoting), checked by Hydra's
own parser. Keys a verb does not own (`model=...`, `data.batch_size=...`) are handed back
as overrides of the *run* configuration when the verb accepts them (evaluate, predict,
export).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from cnnlab.config import compose_config
from cnnlab.errors import CnnlabError
from cnnlab.noise import silence_library_noise
from cnnlab.paths import CONFIG_DIR


def quiet_lightning() -> None:
    """Keep a verb's output to its own results: Lightning's hardware banner, tips and
    dataloader hints say nothing about an evaluation the user asked for."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    silence_library_noise()
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


@dataclass
class Command:
    """A parsed verb command line."""

    cfg: DictConfig  # the verb's own composed config
    run_overrides: list[Override] = field(default_factory=list)  # keys the verb does not own
    paths: list[str] = field(default_factory=list)  # positional arguments (report)


def config_keys(verb: str) -> set[str]:
    """Top-level keys of `conf/<verb>.yaml`, including the groups its defaults list pulls in."""
    raw = OmegaConf.load(CONFIG_DIR / f"{verb}.yaml")
    keys = {str(k) for k in raw} - {"defaults"}
    for entry in raw.get("defaults", []):
        if isinstance(entry, str) and entry != "_self_":
            keys.add(entry.split("@")[0].lstrip("/"))
        elif OmegaConf.is_dict(entry):
            keys.update(str(k).split("@")[0].removeprefix("override ").lstrip("/") for k in entry)
    return keys


def usage(verb: str, doc: str | None) -> str:
    config = (CONFIG_DIR / f"{verb}.yaml").read_text()
    return f"{(doc or '').strip()}\n\nOptions (conf/{verb}.yaml), as key=value:\n\n{config}"


def parse(
    verb: str,
    argv: Sequence[str] | None,
    doc: str | None = None,
    run_overrides: bool = False,
    positional: bool = False,
) -> Command:
    """Split, check and compose a verb's arguments; `-h`/`--help` prints usage and exits 0."""
    args = list(sys.argv[1:] if argv is None else argv)
    quiet_lightning()
    if any(a in ("-h", "--help") for a in args):
        print(usage(verb, doc))
        raise SystemExit(0)
    # `~key` (delete a key) is an override without "=".
    paths = [a for a in args if "=" not in a and not a.startswith("~")]
    if paths and not positional:
        raise CnnlabError(
            f"unexpected argument {paths[0]!r}: cnnlab.{verb} takes key=value arguments "
            f"(see cnnlab {verb} --help)"
        )
    texts = [a for a in args if a not in paths]
    try:
        overrides = OverridesParser.create().parse_overrides(texts)
    except HydraException as err:
        raise CnnlabError(f"cannot parse arguments: {str(err).splitlines()[0]}") from None
    own_keys = config_keys(verb)
    own = [o for o in overrides if o.key_or_group.split(".")[0] in own_keys]
    others = [o for o in overrides if o not in own]
    if others and not run_overrides:
        raise CnnlabError(
            f"unknown option {others[0].key_or_group!r} for cnnlab.{verb}; "
            f"options: {', '.join(sorted(own_keys))}"
        )
    cfg = compose_config(verb, [o.input_line for o in own])
    for key in cfg:
        try:
            cfg[key]
        except MissingMandatoryValue:
            raise CnnlabError(
                f"{key} is required: cnnlab {verb} {key}=<value> (see --help)"
            ) from None
        except OmegaConfBaseException:
            pass  # an interpolation resolved later, where its context exists
    return Command(cfg=cfg, run_overrides=others, paths=paths)
