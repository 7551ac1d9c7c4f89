"""The calculator tool: arithmetic with simpleeval (never Python's ``eval``), every result bounded.

An arithmetic expression can ask for a number so large that computing it holds the interpreter for
minutes (``4000000**4000000`` has 26 million digits, and Python computes it while holding the GIL,
so every other thread of the app waits). So each power, product and left shift is sized from its
operands before it is computed, and refused when its result would have more than
``MAX_RESULT_DIGITS`` digits; every other operation gives a result no larger than its operands.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from simpleeval import DEFAULT_OPERATORS, InvalidExpression, NumberTooHigh, SimpleEval

#: The most digits a result (or any step towards it) may have.
MAX_RESULT_DIGITS = 10_000
#: Bits of an integer with ``MAX_RESULT_DIGITS`` decimal digits (log2(10) bits a digit).
MAX_RESULT_BITS = int(MAX_RESULT_DIGITS * math.log2(10)) + 1
#: Functions the calculator knows besides + - * / // % ** and parentheses.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    **{name: getattr(math, name) for name in ("sqrt", "sin", "cos", "tan", "log", "log10", "exp", "floor", "ceil")},
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
}
NAMES = {"pi": math.pi, "e": math.e}


class CalculatorError(ValueError):
    """An expression the calculator refuses; ``str(error)`` says why in one line."""


def _number(value: object) -> int | float:
    """``value`` if it is a number (not a bool).

    Raises:
        CalculatorError: anything else (a string, a list).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculatorError(f"only numbers can be computed, not {type(value).__name__}")
    return value


def _too_big(bits: float) -> CalculatorError:
    digits = bits / math.log2(10)
    size = f"about {digits:,.0f} digits" if math.isfinite(digits) else "far too many digits"
    return CalculatorError(f"the result would have {size}; the limit is {MAX_RESULT_DIGITS:,}")


def bounded_power(base: object, exponent: object) -> int | float:
    """``base ** exponent``, refused before computing when an integer result would be too large.

    Raises:
        CalculatorError: the result would exceed ``MAX_RESULT_DIGITS`` digits, or an operand is not a number.
        OverflowError: a float result is too large (Python raises it at once).
    """
    a, b = _number(base), _number(exponent)
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        bits = b * math.log2(abs(a)) if b.bit_length() < 64 else math.inf
        if bits > MAX_RESULT_BITS:
            raise _too_big(bits)
    if isinstance(b, int) and isinstance(a, float) and b.bit_length() > 64:
        raise CalculatorError("the exponent is too large")
    return a**b


def bounded_product(left: object, right: object) -> int | float:
    """``left * right``, refused before computing when an integer result would be too large.

    Raises:
        CalculatorError: the result would exceed ``MAX_RESULT_DIGITS`` digits, or an operand is not a number.
    """
    a, b = _number(left), _number(right)
    if isinstance(a, int) and isinstance(b, int) and a.bit_length() + b.bit_length() > MAX_RESULT_BITS:
        raise _too_big(a.bit_length() + b.bit_length())
    return a * b


def bounded_shift(value: object, places: object) -> int:
    """``value << places``, refused before computing when the result would be too large.

    Raises:
        CalculatorError: the result would exceed ``MAX_RESULT_DIGITS`` digits, or an operand is not an integer.
    """
    a, b = _number(value), _number(places)
    if not isinstance(a, int) or not isinstance(b, int):
        raise CalculatorError("shifts take whole numbers")
    if b > 0 and a.bit_length() + b > MAX_RESULT_BITS:
        raise _too_big(a.bit_length() + b)
    return a << b


def _numeric(function: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``function`` for numbers only (strings and lists are refused before it runs)."""

    def checked(left: Any, right: Any) -> Any:
        return function(_number(left), _number(right))

    return checked


#: simpleeval's operators, with the three that can grow a number bounded and every binary operator
#: limited to numbers (simpleeval's own MAX_POWER check lets 4000000**4000000 through).
OPERATORS: dict[type[ast.AST], Any] = {
    **DEFAULT_OPERATORS,
    ast.Add: _numeric(operator.add),
    ast.Sub: _numeric(operator.sub),
    ast.Mult: bounded_product,
    ast.Pow: bounded_power,
    ast.LShift: bounded_shift,
    ast.Div: _numeric(operator.truediv),
    ast.FloorDiv: _numeric(operator.floordiv),
    ast.Mod: _numeric(operator.mod),
}


def integer_text(value: int) -> str:
    """An integer of up to ``MAX_RESULT_DIGITS`` digits in decimal.

    Python refuses to turn an int of more than 4,300 digits into text (``sys.int_max_str_digits``,
    a guard against slow conversions); this converts it in pieces of 4,000 digits, each within that
    guard, without changing the process-wide setting.
    """
    if abs(value) < 10**4000:
        return str(value)
    sign, value = ("-", -value) if value < 0 else ("", value)
    pieces: list[str] = []
    chunk = 10**4000
    while value:
        value, piece = divmod(value, chunk)
        pieces.append(str(piece).zfill(4000) if value else str(piece))
    return sign + "".join(reversed(pieces))


def calculate(expression: str) -> str:
    """Evaluate an arithmetic ``expression``.

    Args:
        expression: e.g. ``17/100 * 250`` or ``sqrt(2) * 3``; ``^`` is read as a power and ``,`` in
            numbers as a thousands separator.

    Returns:
        the value as text (integers without ``.0``), at most ``MAX_RESULT_DIGITS`` digits.

    Raises:
        CalculatorError: the expression is not arithmetic this calculator knows, divides by zero, or
            asks for a number with more than ``MAX_RESULT_DIGITS`` digits.
    """
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", expression.strip()).replace("^", "**")
    evaluator = SimpleEval(operators=OPERATORS, functions=FUNCTIONS, names=NAMES)
    try:
        value = _number(evaluator.eval(text))
    except ZeroDivisionError as exc:
        raise CalculatorError("Division by zero.") from exc
    except CalculatorError as exc:
        raise CalculatorError(f"Not computed ({exc}): {expression!r}") from exc
    except (InvalidExpression, NumberTooHigh, SyntaxError, TypeError, ValueError, KeyError, OverflowError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CalculatorError(f"Not an arithmetic expression I can evaluate ({reason}): {expression!r}") from exc
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, int) and abs(value) >= 10**MAX_RESULT_DIGITS:
        raise CalculatorError(f"Not computed (the result has more than {MAX_RESULT_DIGITS:,} digits): {expression!r}")
    return integer_text(value) if isinstance(value, int) else str(value)
