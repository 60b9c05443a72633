"""The `train:` section: the paper's training recipe, validated into plain data.

Backends read it for their training scripts' defaults. Entries look like
layer calls: `optimizer sgd lr=0.01 momentum=0.9 weight_decay=5e-4`.
"""

from __future__ import annotations

import math

from . import ast
from .errors import NetdslError, did_you_mean

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "step", "multistep", "cosine", "plateau", "exponential")
AUGMENTATIONS = (
    "random_crop",
    "random_resized_crop",
    "hflip",
    "color_jitter",
    "normalize",
    "cutout",
    "mixup",
)

# key -> (positional kind, {keyword: kind}); kinds: number, int, bool, name, names, any
_SCHEMA = {
    "optimizer": (
        "name",
        {
            "lr": "number",
            "momentum": "number",
            "weight_decay": "number",
            "nesterov": "bool",
            "betas": "any",
            "eps": "number",
            "alpha": "number",
        },
    ),
    "lr": ("number", {}),
    "momentum": ("number", {}),
    "weight_decay": ("number", {}),
    "schedule": (
        "name",
        {
            "step": "int",
            "gamma": "number",
            "milestones": "any",
            "patience": "int",
            "factor": "number",
            "warmup": "int",
            "min_lr": "number",
        },
    ),
    "batch_size": ("int", {}),
    "epochs": ("int", {}),
    "aux_weight": ("number", {}),
    "label_smoothing": ("number", {}),
    "augment": ("names", {}),
    "dropout": ("number", {}),
}
_ALIASES = {"batch": "batch_size", "wd": "weight_decay", "decay": "weight_decay", "every": "step"}
_CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "augment": AUGMENTATIONS}
# augmentations whose one argument netdsl checks: name -> (its keyword, its kind)
_AUGMENT_ARGUMENT = {"cutout": ("size", "int"), "mixup": ("alpha", "positive")}


MAX_NUMBER = 2**62  # as elaborate.Limits.max_int: train.py gets every value as a literal


def _literal(expr: ast.Expr):
    if isinstance(expr, ast.Number):
        value = expr.value
        if isinstance(value, float) and not math.isfinite(value):
            raise NetdslError("train: number is not finite", expr.span)
        if abs(value) > MAX_NUMBER:
            raise NetdslError(f"train: number too large (limit {MAX_NUMBER})", expr.span)
        return value
    if isinstance(expr, (ast.Bool, ast.String)):
        return expr.value
    if isinstance(expr, ast.Neg):
        inner = _literal(expr.operand)
        if isinstance(inner, (int, float)):
            return -inner
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, (ast.Tuple,)):
        return [_literal(i) for i in expr.items]
    if isinstance(expr, ast.Shape):
        return list(expr.dims)
    if isinstance(expr, ast.Call):
        for key, _, span in expr.kwargs:
            if key in ("name", "args"):  # they would overwrite the call's own
                raise NetdslError(f"train: {expr.name} has no option '{key}'", span)
        return {
            "name": expr.name,
            "args": [_literal(a) for a in expr.args],
            **{k: _literal(v) for k, v, _ in expr.kwargs},
        }
    raise NetdslError("train settings are literal values (numbers, names, tuples)", expr.span)


def _check(kind: str, value, span, what: str):
    ok = {
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "positive": isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
        "int": isinstance(value, int) and not isinstance(value, bool) and value > 0,
        "bool": isinstance(value, bool),
        "name": isinstance(value, str),
        "names": True,
        "any": True,
    }[kind]
    if not ok:
        expected = {
            "number": "a number",
            "positive": "a positive number",
            "int": "a positive integer",
            "bool": "true or false",
            "name": "a name",
        }[kind]
        raise NetdslError(f"train: {what} must be {expected}, got {value!r}", span)
    return value


def _check_augment_argument(call: ast.Call) -> None:
    """`cutout(16)` / `cutout(size=16)`, `mixup(0.2)` / `mixup(alpha=0.2)`: one value."""
    keyword, kind = _AUGMENT_ARGUMENT[call.name]
    values = [(arg, arg.span) for arg in call.args]
    for name, value, span in call.kwargs:
        if name != keyword:
            raise NetdslError(
                f"train: {call.name} has no option '{name}'",
                span,
                hint=did_you_mean(name, [keyword]) or f"options: {keyword}",
            )
        values.append((value, span))
    if len(values) > 1:
        raise NetdslError(f"train: '{call.name}' takes one value", call.span)
    for value, span in values:
        _check(kind, _literal(value), span, f"{call.name} {keyword}")


def build_train_config(section: ast.TrainDef | None) -> dict:
    config: dict = {}
    if section is None:
        return config
    for entry in section.entries:
        key = _ALIASES.get(entry.key, entry.key)
        if key not in _SCHEMA:
            raise NetdslError(
                f"train: unknown setting '{entry.key}'",
                entry.span,
                hint=did_you_mean(entry.key, list(_SCHEMA) + list(_ALIASES))
                or "settings: " + ", ".join(_SCHEMA),
            )
        if key in config and key != "augment":
            raise NetdslError(f"train: '{key}' is set twice", entry.span)
        positional, keywords = _SCHEMA[key]
        args = [_literal(a) for a in entry.args]
        if key == "augment":
            items = config.setdefault("augment", [])
            for arg, node in zip(args, entry.args):
                name = arg["name"] if isinstance(arg, dict) else arg
                if name not in AUGMENTATIONS:
                    raise NetdslError(
                        f"train: unknown augmentation '{name}'",
                        node.span,
                        hint=did_you_mean(str(name), AUGMENTATIONS)
                        or "known: " + ", ".join(AUGMENTATIONS),
                    )
                if isinstance(node, ast.Call) and name in _AUGMENT_ARGUMENT:
                    _check_augment_argument(node)
                items.append(arg if isinstance(arg, dict) else {"name": arg, "args": []})
            continue
        if len(args) != 1:
            raise NetdslError(f"train: '{key}' takes one value", entry.span)
        value = _check(positional, args[0], entry.args[0].span, key)
        if key in _CHOICES and value not in _CHOICES[key]:
            raise NetdslError(
                f"train: unknown {key} '{value}'",
                entry.args[0].span,
                hint=did_you_mean(value, _CHOICES[key]) or "known: " + ", ".join(_CHOICES[key]),
            )
        if not keywords:
            if entry.kwargs:
                raise NetdslError(f"train: '{key}' takes no options", entry.kwargs[0][2])
            config[key] = value
            continue
        options = {"name": value}
        for name, vexpr, span in entry.kwargs:
            option = _ALIASES.get(name, name)
            if option not in keywords:
                raise NetdslError(
                    f"train: {key} has no option '{name}'",
                    span,
                    hint=did_you_mean(name, keywords) or "options: " + ", ".join(keywords),
                )
            options[option] = _check(keywords[option], _literal(vexpr), span, f"{key} {option}")
        if key == "optimizer":
            config["optimizer"] = value
            for option, v in options.items():
                if option != "name":
                    if option in config:
                        raise NetdslError(f"train: '{option}' is set twice", entry.span)
                    config[option] = v
        else:
            config[key] = options
    return config
