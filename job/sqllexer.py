"""A small lexer for PostgreSQL migration files: their tokens, and the file cut into top-level statements.

Not a parser: just enough to tell code from text and where each statement starts and ends, as the
server's lexer and psql's statement splitter see them: ``--`` comments and nested ``/* */`` comments,
``'...'`` strings (``''`` escapes), ``E'...'`` strings (backslash escapes), ``"quoted identifiers"``
and ``$tag$`` dollar-quoted bodies. A body is one token, so the statements of a function or a DO block
are never taken for statements of the file. Pure: no database, never an error (an unterminated string
or comment simply runs to the end, where PostgreSQL would report it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

WORD, IDENT, STRING, NUMBER, DOLLAR, PARAM, OP = "word", "ident", "string", "number", "dollar", "param", "op"

# Letters of an identifier: ASCII letters, _, and any non-ASCII character, as PostgreSQL has them; said
# as "no other ASCII character" (a class that spans up to U+10FFFF takes ~30 ms to compile).
_LETTER = r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]"
_LETTER_OR_DIGIT = r"[^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"
# Every token at once, the first alternative that matches winning; a /* comment and a $tag$ body are
# then measured by hand (comments nest; a body ends at the same tag). Unterminated text runs to the end.
_TOKEN = re.compile(rf"""
    (?P<space>[ \t\n\r\f\v]+)  # PostgreSQL's whitespace (a non-ASCII space is a letter to it)
  | (?P<comment>--[^\n]*)
  | (?P<block>/\*)
  | (?P<estring>[eE]'(?:[^'\\]+|\\.|'')*'?)  # E'...': the letter alone, right before the quote
  | (?P<string>'(?:[^']+|'')*'?)
  | (?P<ident>"(?:[^"]+|"")*"?)
  | (?P<dollar>\$(?:{_LETTER}{_LETTER_OR_DIGIT}*)?\$)
  | (?P<param>\$\d+)
  | (?P<word>{_LETTER}(?:{_LETTER_OR_DIGIT}|\$)*)
  | (?P<number>0[xXoObB][0-9A-Fa-f_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
  | (?P<op>::|.)
""", re.VERBOSE | re.DOTALL)
_KINDS = {"estring": STRING, "string": STRING, "ident": IDENT, "dollar": DOLLAR, "param": PARAM, "word": WORD,
          "number": NUMBER, "op": OP}
_SKIPPED = ("space", "comment", "block")
_NAMEDATALEN = 63  # longer identifiers are cut to this many bytes, as PostgreSQL does


@dataclass(frozen=True)
class Token:
    kind: str  # WORD, IDENT ("quoted"), STRING, NUMBER, DOLLAR (a $tag$ body), PARAM ($1) or OP
    text: str  # as written
    line: int  # of its first character, from 1
    at: int  # offset of its first character in the file

    def is_(self, *words: str) -> bool:
        """An unquoted keyword, one of ``words`` (upper case)."""
        return self.kind == WORD and self.text.upper() in words

    @property
    def name(self) -> str | None:
        """The identifier as PostgreSQL folds it: unquoted ones in lower case, quoted ones as written."""
        if self.kind == WORD:
            return fold(self.text)
        if self.kind == IDENT:
            return _cut(self.text[1:-1].replace('""', '"'))
        return None


@dataclass(frozen=True)
class Statement:
    line: int  # of its first token
    tokens: tuple[Token, ...]  # comments and the final semicolon left out
    text: str  # the source from its first token to its end

    @property
    def snippet(self) -> str:
        """Its start on one line, for people."""
        flat = " ".join(self.text.split())
        return flat if len(flat) <= 80 else flat[:77] + "..."


def fold(word: str) -> str:
    """An unquoted identifier as PostgreSQL stores it (only ASCII letters are lowered)."""
    return _cut("".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in word))


def _cut(name: str) -> str:
    raw = name.encode()
    return name if len(raw) <= _NAMEDATALEN else raw[:_NAMEDATALEN].decode("utf-8", "ignore")


def tokens(text: str) -> Iterator[Token]:
    """The file's tokens in order; whitespace and comments are skipped."""
    at, line, end = 0, 1, len(text)
    while at < end:
        found = _TOKEN.match(text, at)
        assert found is not None and found.lastgroup is not None  # "op" takes any character
        kind, stop = found.lastgroup, found.end()
        if kind == "block":
            stop = _comment_end(text, at)
        elif kind == "dollar":
            close = text.find(found[0], stop)
            stop = end if close < 0 else close + len(found[0])
        if kind not in _SKIPPED:
            yield Token(_KINDS[kind], text[at:stop], line, at)
        line += text.count("\n", at, stop)
        at = stop


def _comment_end(text: str, at: int) -> int:
    """Just past the ``*/`` that closes the comment opened at ``at``; these comments nest."""
    depth = 0
    while at < len(text):
        if text.startswith("/*", at):
            depth, at = depth + 1, at + 2
        elif text.startswith("*/", at):
            depth, at = depth - 1, at + 2
            if depth == 0:
                return at
        else:
            at += 1
    return len(text)


def statements(text: str) -> list[Statement]:
    """The file's top-level statements: split at semicolons outside parentheses and outside the
    BEGIN ... END of a SQL-standard function body (CREATE FUNCTION ... BEGIN ATOMIC ... END)."""
    found: list[Statement] = []
    current: list[Token] = []
    parens = blocks = 0
    for token in tokens(text):
        if token.text == ";" and parens == 0 and blocks == 0:
            _close(found, current, text, token.at)
            current = []
            continue
        if token.text == "(":
            parens += 1
        elif token.text == ")":
            parens = max(parens - 1, 0)
        elif parens == 0 and token.is_("BEGIN", "CASE", "END") and _defines_routine(current):
            if token.is_("BEGIN") or (token.is_("CASE") and blocks):
                blocks += 1
            elif token.is_("END") and blocks:
                blocks -= 1
        current.append(token)
    _close(found, current, text, len(text))
    return found


def _close(found: list[Statement], current: Sequence[Token], text: str, end: int) -> None:
    if current:
        found.append(Statement(current[0].line, tuple(current), text[current[0].at:end].rstrip()))


def _defines_routine(current: Sequence[Token]) -> bool:
    """CREATE [OR REPLACE] FUNCTION|PROCEDURE: where BEGIN may open a body holding semicolons."""
    words = [t.text.upper() for t in current[:4]]
    if words[:1] != ["CREATE"]:
        return False
    kind = words[3:4] if words[1:3] == ["OR", "REPLACE"] else words[1:2]
    return kind in (["FUNCTION"], ["PROCEDURE"])
