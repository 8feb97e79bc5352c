"""A small, safe expression language for attribute mappings (unit conversion, arithmetic).

Its syntax follows the JEXL subset the FIWARE IoT Agents document (``t * 1.8 + 32``,
``value|round(1)``, ``h > 90 ? "wet" : "dry"``), and the legacy ``${@value * 100}`` form.
It is tokenized and parsed here into a tree that only the evaluator walks: no ``eval``,
no attribute access on Python objects, no loops, and bounded input size and depth.
"""

from __future__ import annotations

from cityos_acquisition.expressions.evaluator import evaluate
from cityos_acquisition.expressions.lexer import ExpressionError
from cityos_acquisition.expressions.parser import Expression, compile_expression

__all__ = ["Expression", "ExpressionError", "compile_expression", "evaluate"]
