"""``?filter=``: the subset of HashiCorp's bexpr language that tools send, parsed and evaluated
here (pure: no I/O, no node).

Grammar (bexpr's, for this subset)::

    expr     := or
    or       := and ("or" and)*
    and      := unary ("and" unary)*
    unary    := "not" unary | "(" or ")" | match
    match    := selector ("==" | "!=") value
              | selector ("contains" | "not contains" | "matches" | "not matches") value
              | selector "is" ["not"] "empty"
              | value ("in" | "not in") selector
    selector := name ("." name)*          e.g. Service.Meta.version, Checks.Status, ServiceTags
    value    := "double quoted" | `backquoted` | bare word (letters, digits, _ - . : /)

Semantics (as bexpr): a selector that goes through a list (``Checks.Status``) stands for every
element's value: ``==``, ``contains``, ``in`` and ``matches`` hold when any element does, their
negations when none does. ``contains``/``in`` test membership in a list (``Service.Tags``), a key
of a map (``Service.Meta``) or a substring of a string. ``is empty``: no value, or empty
strings, lists and maps only. Values compare as text (``Service.Port == 8080``, booleans as
``true``/``false``). ``matches`` is a regular expression search (Python ``re``).

Selectors are checked against the endpoint's schema when parsed: an unknown field, a syntax
error, an unsupported operator or a bad regular expression is a ``FilterError`` naming the
position (1-based column) and the reason; the API answers 400, never ignores a filter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

# A schema: field name -> its type. ``str``/``int``/``bool``: a scalar; ``list``: a list of
# strings; ``dict``: a map of strings (one more selector part names a key); a nested schema
# (``Mapping``): a struct; ``[schema]`` (a one-element list): a list of structs.
Schema = Mapping[str, Any]

MAX_FILTER = 4096

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<op>==|!=)
  | (?P<paren>[()])
  | (?P<dq>"(?:[^"\\]|\\.)*")
  | (?P<bq>`[^`]*`)
  | (?P<word>[A-Za-z0-9_\-.:/]+)
""", re.VERBOSE)
_ESCAPE = re.compile(r"\\(.)")
_NAME = re.compile(r"^[A-Za-z0-9_\-]+\Z")
_KEYWORDS = {"and", "or", "not", "in", "contains", "matches", "is", "empty"}


class FilterError(ValueError):
    """A filter that cannot be used: ``position`` is the 1-based column, ``reason`` why."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"{position}: {reason}")
        self.position = position
        self.reason = reason


@dataclass(frozen=True)
class _Tok:
    kind: str  # op, paren, str, word, end
    text: str
    pos: int


@dataclass(frozen=True)
class Match:
    selector: tuple[str, ...]
    op: str  # ==, contains, matches, empty
    value: str
    negate: bool
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Not:
    inner: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    left: Node
    right: Node


Node = Union[Match, Not, BoolOp]  # noqa: UP007 (a runtime alias used in the dataclasses above)


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FilterError(pos + 1, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind == "dq":
            out.append(_Tok("str", _ESCAPE.sub(r"\1", m.group()[1:-1]), pos + 1))
        elif kind == "bq":
            out.append(_Tok("str", m.group()[1:-1], pos + 1))
        elif kind != "space":
            out.append(_Tok(kind, m.group(), pos + 1))
        pos = m.end()
    out.append(_Tok("end", "", len(text) + 1))
    return out


class _Parser:
    def __init__(self, text: str, schema: Schema) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.schema = schema

    def peek(self, offset: int = 0) -> _Tok:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.peek()
        self.i += 1
        return tok

    def keyword(self, word: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok.kind == "word" and tok.text == word

    def expect_keyword(self, word: str) -> None:
        tok = self.next()
        if tok.kind != "word" or tok.text != word:
            raise FilterError(tok.pos, f"expected {word!r}, found {tok.text or 'the end'!r}")

    def parse(self) -> Node:
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise FilterError(tok.pos, f"unexpected {tok.text!r} (expected 'and', 'or' or the end)")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.keyword("or"):
            self.next()
            node = BoolOp("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.unary()
        while self.keyword("and"):
            self.next()
            node = BoolOp("and", node, self.unary())
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if self.keyword("not"):
            self.next()
            return Not(self.unary())
        if tok.kind == "paren" and tok.text == "(":
            self.next()
            node = self.or_()
            close = self.next()
            if close.kind != "paren" or close.text != ")":
                raise FilterError(close.pos, "expected ')'")
            return node
        return self.match()

    def value(self) -> str:
        tok = self.next()
        if tok.kind == "str" or (tok.kind == "word" and tok.text not in _KEYWORDS):
            return tok.text
        raise FilterError(tok.pos, f"expected a value, found {tok.text or 'the end'!r}")

    def match(self) -> Node:
        first = self.peek()
        # value ["not"] "in" selector
        if first.kind == "str" or (self.keyword("in", 1) or (self.keyword("not", 1) and self.keyword("in", 2))):
            value = self.value()
            negate = self.keyword("not")
            if negate:
                self.next()
            self.expect_keyword("in")
            return Match(self.selector(), "contains", value, negate)
        selector = self.selector()
        tok = self.next()
        if tok.kind == "op":
            return Match(selector, "==", self.value(), tok.text == "!=")
        if tok.kind == "word" and tok.text == "is":
            negate = self.keyword("not")
            if negate:
                self.next()
            self.expect_keyword("empty")
            return Match(selector, "empty", "", negate)
        negate = tok.kind == "word" and tok.text == "not"
        if negate:
            tok = self.next()
        if tok.kind == "word" and tok.text in ("contains", "matches"):
            value_tok = self.peek()
            value = self.value()
            pattern = None
            if tok.text == "matches":
                try:
                    pattern = re.compile(value)
                except re.error as exc:
                    raise FilterError(value_tok.pos, f"bad regular expression: {exc}") from None
            return Match(selector, tok.text, value, negate, pattern)
        raise FilterError(tok.pos, f"expected an operator (==, !=, contains, in, matches, is empty), found "
                                   f"{tok.text or 'the end'!r}")

    def selector(self) -> tuple[str, ...]:
        tok = self.next()
        if tok.kind != "word" or tok.text in _KEYWORDS:
            raise FilterError(tok.pos, f"expected a selector, found {tok.text or 'the end'!r}")
        parts = tuple(tok.text.split("."))
        schema: Any = self.schema
        for n, part in enumerate(parts):
            if not _NAME.match(part):
                raise FilterError(tok.pos, f"bad selector {tok.text!r}")
            if isinstance(schema, list):
                schema = schema[0]
            if schema is dict:
                if n != len(parts) - 1:
                    raise FilterError(tok.pos, f"selector {tok.text!r} goes past a map value")
                return parts
            if not isinstance(schema, Mapping) or part not in schema:
                known = ", ".join(sorted(schema)) if isinstance(schema, Mapping) else ""
                raise FilterError(tok.pos, f"unknown selector {tok.text!r}" + (f" (fields here: {known})"
                                                                                 if known else ""))
            schema = schema[part]
        return parts


def parse(text: str, schema: Schema) -> Node | None:
    """The filter ``text`` parsed against ``schema``; None for an empty filter."""
    if not text.strip():
        return None
    if len(text) > MAX_FILTER:
        raise FilterError(MAX_FILTER, f"filter longer than {MAX_FILTER} characters")
    return _Parser(text, schema).parse()


def _resolve(obj: Any, path: tuple[str, ...]) -> list[Any]:
    values = [obj]
    for part in path:
        nxt: list[Any] = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, Mapping) and part in item:
                    nxt.append(item[part])
        values = nxt
    return values


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _scalars(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if isinstance(value, list):
            out.extend(value)
        else:
            out.append(value)
    return out


def _holds(match: Match, obj: Any) -> bool:
    values = _resolve(obj, match.selector)
    if match.op == "empty":
        return all(v in ("", None) or (isinstance(v, list | dict) and not v) for v in values)
    if match.op == "==":
        return any(_text(v) == match.value for v in _scalars(values) if not isinstance(v, dict))
    if match.op == "matches":
        pattern = match.pattern
        return pattern is not None and any(pattern.search(_text(v)) for v in _scalars(values)
                                           if not isinstance(v, dict))
    for value in values:  # contains / in
        if isinstance(value, dict):
            if match.value in value:
                return True
        elif isinstance(value, list):
            if any(_text(v) == match.value for v in value):
                return True
        elif match.value in _text(value):
            return True
    return False


def evaluate(node: Node, obj: Any) -> bool:
    """Whether ``obj`` (an answer item, as the API encodes it) passes the filter."""
    if isinstance(node, Match):
        return _holds(node, obj) != node.negate
    if isinstance(node, Not):
        return not evaluate(node.inner, obj)
    if node.op == "and":
        return evaluate(node.left, obj) and evaluate(node.right, obj)
    return evaluate(node.left, obj) or evaluate(node.right, obj)


def predicate(text: str, schema: Schema) -> Callable[[Any], bool]:
    """A predicate for ``filter=text`` (always true for an empty filter); ``FilterError`` at once."""
    node = parse(text, schema)
    if node is None:
        return lambda _obj: True
    return lambda obj: evaluate(node, obj)
