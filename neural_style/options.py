"""The command line's options, made from the settings' declarations in config.py: the argument
parser, the Settings an argument list asks for, and the arguments that give a Settings back."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, fields
from typing import Sequence

from .config import GROUPS, SIZE_OPTION, Settings, Stage, parse_size

# The Stage fields that are options, each taking one value per stage or one for all.
STAGE_OPTIONS = tuple(f for f in fields(Stage) if "help" in f.metadata)
SETTINGS_OPTIONS = tuple(f for f in fields(Settings) if "help" in f.metadata)


def flags(f: Field) -> list[str]:
    return [f.metadata["flag"] or "--" + f.name.replace("_", "-"), *f.metadata["aliases"]]


def add_settings_arguments(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """Every setting's option on parser, in its group; returns the groups by key (config.GROUPS),
    for the caller's own options."""
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    schedule = groups["schedule"]
    schedule.add_argument(SIZE_OPTION["flag"], **{k: v for k, v in SIZE_OPTION.items() if k != "flag"})
    schedule.add_argument("--original-size", action="store_true",
                          help="end with one more stage at the content image's own size (the same as one more "
                               "--size value `original`)")
    for f in STAGE_OPTIONS:
        schedule.add_argument(*flags(f), dest=f.name, help=f.metadata["help"], **f.metadata["argparse"])
    for f in SETTINGS_OPTIONS:
        groups[f.metadata["group"]].add_argument(*flags(f), dest=f.name, default=f.default, help=f.metadata["help"],
                                                 **f.metadata["argparse"])
    return groups


def build_stages(args: argparse.Namespace, defaults: Sequence[Stage]) -> tuple[Stage, ...]:
    """Per-stage options over the default schedule; stages past the defaults repeat the last one.
    ValueError when an option has neither one value nor one per stage."""
    sizes = list(args.size or [parse_size(s.size_text()) for s in defaults])
    if args.original_size:
        sizes.append("original")
    n = len(sizes)
    columns = {}
    for f in STAGE_OPTIONS:
        values = getattr(args, f.name)
        if values is None:
            values = [getattr(defaults[min(i, len(defaults) - 1)], f.name) for i in range(n)]
        elif len(values) == 1:
            values = values * n
        elif len(values) != n:
            raise ValueError(f"{flags(f)[0]} has {len(values)} values for {n} stages")
        columns[f.name] = values
    return tuple(Stage.sized(size, **{k: v[i] for k, v in columns.items()}) for i, size in enumerate(sizes))


def settings_from_args(args: argparse.Namespace, defaults: Sequence[Stage]) -> Settings:
    """The Settings the parsed arguments ask for, validated (ValueError when they do not fit)."""
    return Settings(stages=build_stages(args, defaults),
                    **{f.name: getattr(args, f.name) for f in SETTINGS_OPTIONS}).validate()


def settings_to_argv(settings: Settings) -> list[str]:
    """Options that give settings back through settings_from_args (what `info` prints): every
    per-stage option, and each setting that is not its default."""
    argv = [SIZE_OPTION["flag"], *(s.size_text() for s in settings.stages)]
    for f in STAGE_OPTIONS:
        argv += [flags(f)[0], *(text for s in settings.stages for text in f.metadata["to_text"](getattr(s, f.name)))]
    for f in SETTINGS_OPTIONS:
        value = getattr(settings, f.name)
        if value != (f.default if f.default is not MISSING else None) and value is not None:
            argv += [flags(f)[0], *f.metadata["to_text"](value)]
    return argv
