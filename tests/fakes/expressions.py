"""DynamoDB expression grammar for the in-memory state-table fake (tests/fakes/statetable.py).

A small, generic subset of what DynamoDB documents, parsed once per expression string:

- conditions (ConditionExpression, KeyConditionExpression, FilterExpression):
  `attribute_exists(p)`, `attribute_not_exists(p)`, `begins_with(p, v)`, `contains(p, v)`,
  `size(p)` as an operand, comparisons `= <> < <= > >=`, `BETWEEN a AND b`,
  `IN (a, b, ...)`, `AND`, `OR`, `NOT` and parentheses, with `#names` and `:values`;
- updates: `SET p = v`, `SET p = v + w` / `v - w`, `if_not_exists(p, v)`,
  `list_append(a, b)`, `ADD p :n` (numbers and sets), `REMOVE p`, `DELETE p :set`.

Paths are top-level attribute names (the worker's items are flat). Values are in
DynamoDB JSON (`{"S": ...}`, `{"N": ...}`); numbers compare as decimals, strings by code
point (which is UTF-8 byte order, as DynamoDB sorts), and values of different types never
compare equal. A comparison with a missing attribute is false, except `<>`, which is
true (as DynamoDB evaluates `a <> :v` on an item without `a`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

Item = dict[str, Any]
Names = Mapping[str, str]
Values = Mapping[str, Any]
Condition = Callable[[Item, Names, Values], bool]
Operand = Callable[[Item, Names, Values], Any]

_TOKEN = re.compile(
    r"\s*(?:(?P<op><>|<=|>=|=|<|>|\(|\)|,|\+|-)|(?P<word>[#:]?[A-Za-z_][A-Za-z0-9_.]*))"
)
_KEYWORDS = {"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "ADD", "REMOVE", "DELETE"}


class ExpressionError(ValueError):
    """The expression is not in the supported grammar (a ValidationException on AWS)."""


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ExpressionError(f"cannot parse {text[position:]!r}")
        tokens.append(match.group("op") or match.group("word"))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return tokens


def attribute(path: str, names: Names) -> str:
    if path.startswith("#"):
        if path not in names:
            raise ExpressionError(f"undefined name {path}")
        return names[path]
    return path


def _value(token: str, values: Values) -> Any:
    if token not in values:
        raise ExpressionError(f"undefined value {token}")
    return values[token]


def compare(left: Any, op: str, right: Any) -> bool:
    if left is None or right is None:
        return op == "<>" and not (left is None and right is None)
    ((lt, lv),) = left.items()
    ((rt, rv),) = right.items()
    if lt != rt:
        return op == "<>"
    if lt == "N":
        lv, rv = Decimal(lv), Decimal(rv)
    elif lt in ("SS", "NS", "BS"):
        lv, rv = frozenset(lv), frozenset(rv)
        if op not in ("=", "<>"):
            return False
    result: bool = {
        "=": lambda: lv == rv,
        "<>": lambda: lv != rv,
        "<": lambda: lv < rv,
        "<=": lambda: lv <= rv,
        ">": lambda: lv > rv,
        ">=": lambda: lv >= rv,
    }[op]()
    return result


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.upper() != expected):
            raise ExpressionError(f"expected {expected or 'a token'}, got {token!r}")
        self.index += 1
        return token

    def done(self) -> None:
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()!r}")

    # -- conditions ----------------------------------------------------------------

    def condition(self) -> Condition:
        left = self.conjunction()
        while (self.peek() or "").upper() == "OR":
            self.take()
            right, first = self.conjunction(), left
            left = lambda i, n, v, a=first, b=right: a(i, n, v) or b(i, n, v)  # noqa: E731
        return left

    def conjunction(self) -> Condition:
        left = self.negation()
        while (self.peek() or "").upper() == "AND":
            self.take()
            right, first = self.negation(), left
            left = lambda i, n, v, a=first, b=right: a(i, n, v) and b(i, n, v)  # noqa: E731
        return left

    def negation(self) -> Condition:
        if (self.peek() or "").upper() == "NOT":
            self.take()
            inner = self.negation()
            return lambda i, n, v: not inner(i, n, v)
        return self.primary()

    def primary(self) -> Condition:
        token = self.peek()
        if token == "(":
            self.take()
            inner = self.condition()
            self.take(")")
            return inner
        lowered = (token or "").lower()
        if lowered in ("attribute_exists", "attribute_not_exists", "begins_with", "contains"):
            return self.function(lowered)
        left = self.operand()
        op = self.take()
        if op.upper() == "BETWEEN":
            low = self.operand()
            self.take("AND")
            high = self.operand()
            return lambda i, n, v: (
                compare(left(i, n, v), ">=", low(i, n, v))
                and compare(left(i, n, v), "<=", high(i, n, v))
            )
        if op.upper() == "IN":
            self.take("(")
            options = [self.operand()]
            while self.peek() == ",":
                self.take()
                options.append(self.operand())
            self.take(")")
            return lambda i, n, v: any(compare(left(i, n, v), "=", o(i, n, v)) for o in options)
        if op not in ("=", "<>", "<", "<=", ">", ">="):
            raise ExpressionError(f"unknown comparator {op!r}")
        right = self.operand()
        return lambda i, n, v: compare(left(i, n, v), op, right(i, n, v))

    def function(self, name: str) -> Condition:
        self.take()
        self.take("(")
        path = self.take()
        argument: Operand | None = None
        if name in ("begins_with", "contains"):
            self.take(",")
            argument = self.operand()
        self.take(")")
        if name == "attribute_exists":
            return lambda i, n, v: attribute(path, n) in i
        if name == "attribute_not_exists":
            return lambda i, n, v: attribute(path, n) not in i
        assert argument is not None
        operand = argument
        if name == "begins_with":
            return lambda i, n, v: _begins_with(i.get(attribute(path, n)), operand(i, n, v))
        return lambda i, n, v: _contains(i.get(attribute(path, n)), operand(i, n, v))

    def operand(self) -> Operand:
        token = self.take()
        if token.lower() == "size":
            self.take("(")
            path = self.take()
            self.take(")")
            return lambda i, n, v: _size(i.get(attribute(path, n)))
        if token.startswith(":"):
            return lambda i, n, v: _value(token, v)
        if token.upper() in _KEYWORDS or not (token[0].isalpha() or token[0] in "#_"):
            raise ExpressionError(f"expected an operand, got {token!r}")
        return lambda i, n, v: i.get(attribute(token, n))


def _begins_with(value: Any, prefix: Any) -> bool:
    if value is None or prefix is None:
        return False
    ((kind, text),) = value.items()
    ((pkind, ptext),) = prefix.items()
    return kind == pkind == "S" and str(text).startswith(str(ptext))


def _contains(value: Any, part: Any) -> bool:
    if value is None or part is None:
        return False
    ((kind, content),) = value.items()
    ((_, wanted),) = part.items()
    if kind == "S":
        return str(wanted) in str(content)
    if kind in ("SS", "NS", "BS"):
        return wanted in content
    if kind == "L":
        return part in content
    return False


def _size(value: Any) -> Any:
    if value is None:
        return None
    ((kind, content),) = value.items()
    length = len(content.encode()) if kind == "S" else len(content)
    return {"N": str(length)}


@lru_cache(maxsize=512)
def parse_condition(text: str) -> Condition:
    parser = _Parser(text)
    condition = parser.condition()
    parser.done()
    return condition


# -- updates -----------------------------------------------------------------------

Action = Callable[[Item, Names, Values], None]


def _arith(left: Any, op: str, right: Any) -> Any:
    if left is None or right is None or "N" not in left or "N" not in right:
        raise ExpressionError("an operand in the update expression has the wrong type")
    result = Decimal(left["N"]) + (Decimal(right["N"]) if op == "+" else -Decimal(right["N"]))
    return {"N": str(result)}


class _UpdateParser(_Parser):
    def actions(self) -> list[Action]:
        actions: list[Action] = []
        while self.peek() is not None:
            clause = self.take().upper()
            handler = {
                "SET": self.set_action,
                "ADD": self.add_action,
                "REMOVE": self.remove_action,
                "DELETE": self.delete_action,
            }.get(clause)
            if handler is None:
                raise ExpressionError(f"unknown update clause {clause!r}")
            actions.append(handler())
            while self.peek() == ",":
                self.take()
                actions.append(handler())
        return actions

    def value(self) -> Operand:
        first = self.term()
        if self.peek() in ("+", "-"):
            op = self.take()
            second = self.term()
            return lambda i, n, v: _arith(first(i, n, v), op, second(i, n, v))
        return first

    def term(self) -> Operand:
        lowered = (self.peek() or "").lower()
        if lowered in ("if_not_exists", "list_append"):
            self.take()
            self.take("(")
            a = self.term()
            self.take(",")
            b = self.term()
            self.take(")")
            if lowered == "if_not_exists":
                return lambda i, n, v: a(i, n, v) if a(i, n, v) is not None else b(i, n, v)
            return lambda i, n, v: {"L": [*a(i, n, v)["L"], *b(i, n, v)["L"]]}
        return self.operand()

    def set_action(self) -> Action:
        path = self.take()
        self.take("=")
        value = self.value()

        def act(item: Item, names: Names, values: Values) -> None:
            result = value(item, names, values)
            if result is None:
                raise ExpressionError("the SET value refers to a missing attribute")
            item[attribute(path, names)] = result

        return act

    def add_action(self) -> Action:
        path = self.take()
        token = self.take()

        def act(item: Item, names: Names, values: Values) -> None:
            name, delta = attribute(path, names), _value(token, values)
            current = item.get(name)
            if "N" in delta:
                base = Decimal(current["N"]) if current else Decimal(0)
                item[name] = {"N": str(base + Decimal(delta["N"]))}
                return
            ((kind, members),) = delta.items()
            existing = list(current[kind]) if current else []
            item[name] = {kind: existing + [m for m in members if m not in existing]}

        return act

    def remove_action(self) -> Action:
        path = self.take()
        return lambda i, n, v: i.pop(attribute(path, n), None) and None

    def delete_action(self) -> Action:
        path = self.take()
        token = self.take()

        def act(item: Item, names: Names, values: Values) -> None:
            name = attribute(path, names)
            ((kind, members),) = _value(token, values).items()
            if name in item:
                left = [m for m in item[name][kind] if m not in members]
                if left:
                    item[name] = {kind: left}
                else:
                    del item[name]

        return act


@lru_cache(maxsize=512)
def parse_update(text: str) -> list[Action]:
    return _UpdateParser(text).actions()


def projection(item: Item, text: str | None, names: Names) -> Item:
    """Keep the attributes a ProjectionExpression names (top-level paths)."""
    if not text:
        return item
    wanted = {attribute(part.strip(), names) for part in text.split(",")}
    return {k: v for k, v in item.items() if k in wanted}
