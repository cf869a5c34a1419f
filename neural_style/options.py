"""The command line's options, made from the settings' declarations in config.py: the argument
parser, the Settings an argument list asks for, and the arguments that give a Settings back."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, fields, replace

from .config import DEFAULT_PRESET, GROUPS, PRESETS, SIZE_OPTION, Preset, Settings, Stage, settings_for

# The Stage fields that are options, each taking one value per stage or one for all.
STAGE_OPTIONS = tuple(f for f in fields(Stage) if "help" in f.metadata)
SETTINGS_OPTIONS = tuple(f for f in fields(Settings) if "help" in f.metadata)


def flags(f: Field) -> list[str]:
    return [f.metadata["flag"] or "--" + f.name.replace("_", "-"), *f.metadata["aliases"]]


def add_settings_arguments(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """Every setting's option on parser, in its group; returns the groups by key (config.GROUPS),
    for the caller's own options. An option not given parses as None, so that the preset's value
    can take its place (settings_from_args); its help names the lecture's default."""
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    schedule = groups["schedule"]
    schedule.add_argument(SIZE_OPTION["flag"], **{k: v for k, v in SIZE_OPTION.items() if k != "flag"})
    schedule.add_argument("--original-size", action="store_true",
                          help="end with one more stage at the content image's own size (the same as one more "
                               "--size value `original`)")
    for f in STAGE_OPTIONS:
        schedule.add_argument(*flags(f), dest=f.name, help=f.metadata["help"], **f.metadata["argparse"])
    for f in SETTINGS_OPTIONS:
        groups[f.metadata["group"]].add_argument(*flags(f), dest=f.name,
                                                 help=f.metadata["help"] % {"default": f.default}, **f.metadata["argparse"])
    return groups


def presets_help() -> str:
    """The presets, one line each, for the end of a parser's help."""
    width = max(map(len, PRESETS))
    return "presets (--preset NAME; the defaults shown above are the lecture's):\n" + "\n".join(
        f"  {name:<{width}}  {preset.description}" for name, preset in PRESETS.items())


def build_stages(args: argparse.Namespace, preset: Preset) -> tuple[Stage, ...]:
    """The preset's stages for --size (Preset.stages_for) and --original-size, with the per-stage
    options given over them. ValueError when an option has neither one value nor one per stage."""
    stages = preset.stages_for(args.size or ())
    if args.original_size:
        stages += (preset.stage(len(stages)).with_size("original"),)
    n = len(stages)
    columns = {}
    for f in STAGE_OPTIONS:
        values = getattr(args, f.name)
        if values is None:
            continue
        if len(values) == 1:
            values = values * n
        elif len(values) != n:
            raise ValueError(f"{flags(f)[0]} has {len(values)} values for {n} stages")
        columns[f.name] = values
    return tuple(replace(stage, **{k: v[i] for k, v in columns.items()}) for i, stage in enumerate(stages))


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The Settings the parsed arguments ask for, validated (ValueError when they do not fit): the
    preset's (--preset, else the lecture's) with the options given over it."""
    given = {f.name: getattr(args, f.name) for f in SETTINGS_OPTIONS if getattr(args, f.name) is not None}
    given.setdefault("preset", DEFAULT_PRESET)
    return settings_for(stages=build_stages(args, PRESETS[given["preset"]]), **given).validate()


def settings_to_argv(settings: Settings) -> list[str]:
    """Options that give settings back through settings_from_args (what `info` prints): the
    preset first, every per-stage option, and each setting that is not the lecture's default or
    not the preset's value (so the values hold even where a later version retunes the preset).
    A lone stage by long side N under a preset with a schedule would come back as that schedule;
    resolved settings (a result's: every size WxH) always come back as they are."""
    preset = PRESETS[settings.preset].values if settings.preset in PRESETS else {}
    given = {}
    for f in SETTINGS_OPTIONS:
        value, default = getattr(settings, f.name), f.default if f.default is not MISSING else None
        if value is not None and (value != default or value != preset.get(f.name, default)):
            given[f.name] = [flags(f)[0], *f.metadata["to_text"](value)]
    argv = [*given.pop("preset", []), SIZE_OPTION["flag"], *(s.size_text() for s in settings.stages)]
    for f in STAGE_OPTIONS:
        argv += [flags(f)[0], *(text for s in settings.stages for text in f.metadata["to_text"](getattr(s, f.name)))]
    return argv + [text for option in given.values() for text in option]
