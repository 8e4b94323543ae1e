"""``db-init completion bash``: a bash completion script written from the parser itself, so it never lags.

Completes commands, each command's options, and the choices of options that have them (from
``job.config.SETTINGS``). No dependency: argparse is walked directly.
"""

from __future__ import annotations

import argparse
import shlex

from job.config import SETTINGS


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--"))


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def bash_script(parser: argparse.ArgumentParser) -> str:
    commands = _commands(parser)
    per_command = "\n".join(
        f"        {name}) opts={shlex.quote(' '.join(_options(sub)))} ;;" for name, sub in commands.items())
    choices = "\n".join(f"        {s.flag}) COMPREPLY=($(compgen -W {shlex.quote(' '.join(s.choices))}"
                        ' -- "$cur")); return ;;' for s in SETTINGS if s.choices)
    return f"""# bash completion for db-init: source <(db-init completion bash)
_db_init() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" cmd="" word opts
    case "$prev" in
{choices}
        completion) COMPREPLY=($(compgen -W bash -- "$cur")); return ;;
    esac
    for word in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        case "$word" in {'|'.join(commands)}) cmd="$word" ;; esac
    done
    case "$cmd" in
{per_command}
        *) opts={shlex.quote(' '.join([*commands, *_options(parser)]))} ;;
    esac
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}}
complete -F _db_init db-init"""
