"""The lock estimate is pure: the lexer, each rule of the classifier and the walk over the pending files,
with the catalog given as data. No database here (tests/test_lockguard.py runs it against one)."""

from __future__ import annotations

from job.sqllexer import DOLLAR, IDENT, PARAM, STRING, WORD, fold, statements, tokens

# --- the lexer ----------------------------------------------------------------------------------------

def split(text: str) -> list[tuple[int, str]]:
    return [(s.line, s.text) for s in statements(text)]


def test_statements_are_split_at_top_level_semicolons_with_the_line_each_starts_on() -> None:
    assert split("SELECT 1;\n\n  SELECT 2 ;SELECT\n3") == [(1, "SELECT 1"), (3, "SELECT 2"), (3, "SELECT\n3")]
    assert split(";;  ;\n") == []


def test_comments_hide_semicolons_quotes_and_nest() -> None:
    text = "-- a; 'b\nSELECT 1 /* one /* two; */ still 'inside' ; */ + 1;\n-- end ' $$"
    assert [s.line for s in statements(text)] == [2]
    assert [t.text for t in statements(text)[0].tokens] == ["SELECT", "1", "+", "1"]


def test_strings_with_doubled_quotes_hide_semicolons() -> None:
    [s] = statements("INSERT INTO t VALUES ('it''s; fine', 'x');")
    assert [t.text for t in s.tokens if t.kind == STRING] == ["'it''s; fine'", "'x'"]


def test_e_strings_take_backslash_escapes_and_plain_strings_do_not() -> None:
    [e, plain] = statements("SELECT E'a\\'; b', e'\\\\';\nSELECT 'c:\\';")
    assert [t.text for t in e.tokens if t.kind == STRING] == ["E'a\\'; b'", "e'\\\\'"]
    assert [t.text for t in plain.tokens if t.kind == STRING] == ["'c:\\'"]
    assert plain.line == 2
    # A word that merely ends in e is no E-string prefix
    assert [t.kind for t in tokens("type'x'")] == [WORD, STRING]


def test_quoted_identifiers_keep_their_case_and_hide_semicolons() -> None:
    [s] = statements('CREATE INDEX "a;""b" ON "Tenant"(x);')
    idents = [t for t in s.tokens if t.kind == IDENT]
    assert [t.name for t in idents] == ['a;"b', "Tenant"]


def test_dollar_quoted_bodies_are_one_token_and_hide_statements() -> None:
    text = ("CREATE FUNCTION f() RETURNS void AS $body$\nBEGIN\n  UPDATE t SET x = $$;$$;\nEND\n$body$"
            " LANGUAGE plpgsql;\nDO $$ BEGIN PERFORM 1; END $$;\nSELECT $1, a$b FROM t;")
    found = statements(text)
    assert [s.line for s in found] == [1, 6, 7]
    assert [t.kind for t in found[0].tokens].count(DOLLAR) == 1
    assert [(t.kind, t.text) for t in found[2].tokens][1:4] == [(PARAM, "$1"), ("op", ","), (WORD, "a$b")]


def test_a_sql_standard_function_body_is_one_statement() -> None:
    text = ("CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n"
            "  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n  SELECT 3;\nEND;\nBEGIN;\nCOMMIT;")
    assert [line for line, _ in split(text)] == [1, 6, 7]


def test_line_numbers_count_the_lines_of_strings_comments_and_bodies() -> None:
    text = "/* a\nb */ SELECT 'x\ny';\n$$\n\n$$;\nSELECT 1;"
    assert [line for line, _ in split(text)] == [2, 4, 7]


def test_unterminated_text_runs_to_the_end_without_an_error() -> None:
    for text in ("SELECT 'abc", 'SELECT "abc', "SELECT $x$ abc", "SELECT /* /* */ x", "SELECT E'\\"):
        assert len(statements(text)) == 1


def test_names_fold_as_postgresql_folds_them() -> None:
    assert fold("Tenant") == "tenant" and fold("ÉTÉ") == "ÉtÉ"  # only ASCII letters are lowered
    [bare, quoted] = [t.name for t in tokens('Tenant "Tenant"')]
    assert (bare, quoted) == ("tenant", "Tenant")
    assert fold("x" * 70) == "x" * 63  # cut at NAMEDATALEN - 1 bytes
