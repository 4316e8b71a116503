"""Arithmetic for the calculator tool: Python's parser builds the tree, a walker evaluates it.

Only the nodes listed here are evaluated; anything else (names other than the constants,
attribute access, subscripts, comprehensions, lambdas, strings) is refused, so nothing a
model writes can reach ``eval`` or the interpreter. Sizes are bounded so that ``9**9**9``
or a thousand nested brackets fail fast instead of eating the worker.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 40
MAX_EXPONENT = 10_000
MAX_MAGNITUDE = 1e308

Number = int | float


class CalculationError(ValueError):
    """The expression cannot be evaluated; the message says why, for the model to read."""


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "ln": math.log,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": math.factorial,
}
_CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def calculate(expression: str) -> Number:
    """Evaluate an arithmetic expression such as ``(2 + 3) * sqrt(16) / 2^3``."""
    # Calculators read 2^10 as a power; rewriting it before parsing keeps the power's precedence.
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text:
        raise CalculationError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculationError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CalculationError(f"cannot parse {text!r}") from None
    return _Evaluator().evaluate(tree.body, depth=0)


def format_number(value: Number) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.12g}"
    return str(value)


class _Evaluator:
    def evaluate(self, node: ast.AST, *, depth: int) -> Number:
        if depth > MAX_DEPTH:
            raise CalculationError("the expression is nested too deeply")
        if isinstance(node, ast.Constant):
            return self._constant(node.value)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return self._checked(_UNARY[type(node.op)](self.evaluate(node.operand, depth=depth + 1)))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self._binary(node, depth)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise CalculationError(f"{type(node).__name__} is not allowed in a calculation")

    def _constant(self, value: object) -> Number:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CalculationError(f"{value!r} is not a number")
        return self._checked(value)

    def _name(self, name: str) -> Number:
        if name not in _CONSTANTS:
            raise CalculationError(f"unknown name {name!r} (known constants: {', '.join(_CONSTANTS)})")
        return _CONSTANTS[name]

    def _binary(self, node: ast.BinOp, depth: int) -> Number:
        left = self.evaluate(node.left, depth=depth + 1)
        right = self.evaluate(node.right, depth=depth + 1)
        operation = _BINARY[type(node.op)]
        if operation is operator.pow:
            self._check_power(left, right)
        try:
            return self._checked(operation(left, right))
        except ZeroDivisionError:
            raise CalculationError("division by zero") from None
        except (OverflowError, ValueError) as error:
            raise CalculationError(str(error)) from None

    def _call(self, node: ast.Call, depth: int) -> Number:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
            name = node.func.id if isinstance(node.func, ast.Name) else "this call"
            raise CalculationError(f"{name} is not a known function (known: {', '.join(_FUNCTIONS)})")
        arguments = [self.evaluate(argument, depth=depth + 1) for argument in node.args]
        if node.func.id == "factorial" and (len(arguments) != 1 or not 0 <= arguments[0] <= 170):
            raise CalculationError("factorial takes one whole number from 0 to 170")
        try:
            return self._checked(_FUNCTIONS[node.func.id](*arguments))
        except (TypeError, ValueError, OverflowError) as error:
            raise CalculationError(f"{node.func.id}: {error}") from None

    @staticmethod
    def _check_power(base: Number, exponent: Number) -> None:
        if abs(exponent) > MAX_EXPONENT and abs(base) > 1:
            raise CalculationError(f"exponents above {MAX_EXPONENT} are not allowed")
        whole = isinstance(base, int) and isinstance(exponent, int)
        if whole and exponent > 0 and base != 0 and exponent * math.log10(abs(base)) > 300:
            raise CalculationError("the result is too large")

    @staticmethod
    def _checked(value: Number | complex) -> Number:
        if isinstance(value, complex):
            raise CalculationError("the result is not a real number")
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            raise CalculationError("the result is not a finite number")
        if abs(value) > MAX_MAGNITUDE:
            raise CalculationError("the result is too large")
        return value
