"""Warnings: programs that elaborate but are probably not what their author meant.

A warning is not an error: the network is valid, its shapes check and the generated code
runs. Each warning names a habit that costs accuracy or parameters, and says what to write
instead. `netdsl check` prints them (`--no-warn` hides them), the language server shows them
as they are typed, and `# netdsl: ignore[code]` at the end of the line a warning points at
silences that code there (`# netdsl: ignore` silences every code), for a reference that
really does it.

The graph checks read the elaborated network (what every instance of a block became); the
definition checks (unused blocks and parameters) read the file's definitions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from . import ast
from .errors import SourceRegistry, Span, _excerpt
from .layers import CATALOGUE

# code -> what it is about (`netdsl check --help` and docs/editors.md list them)
CODES = {
    "linear-stack": "two conv/fc layers with no nonlinearity between them",
    "bias-before-bn": "a conv/fc bias right before BatchNorm, which cancels it",
    "dropout-before-bn": "dropout right before BatchNorm",
    "softmax-output": "a network that ends in softmax, which cross-entropy applies again",
    "unused-block": "a block the file's networks never call",
    "unused-param": "a parameter its definition never reads",
}

_IGNORE = re.compile(r"#\s*netdsl:\s*ignore(?:\[([\w\s,-]*)\])?")

# ops whose output is a linear function of their input (eval mode): a linear stack passes them
_LINEAR = frozenset(
    {"bn", "dropout", "drop_path", "avgpool", "gap", "adaptive_avgpool", "flatten"}
    | {"zeropad", "crop", "shuffle", "pixel_shuffle", "pixel_unshuffle", "layer_scale", "scale"}
)
# layers with weights that compute a linear map of their input
_WEIGHTED = frozenset({"conv", "dwconv", "sepconv", "conv_transpose", "fc", "pointwise_fc"})
_NONLINEAR_CATEGORIES = frozenset({"activation", "attention"})


@dataclass(frozen=True)
class NetdslWarning:
    """One finding: its code (for `# netdsl: ignore[code]`), message, span and hint."""

    code: str
    message: str
    span: Span
    hint: str | None = None

    def format(self) -> str:
        """As errors print: `file:line:col: warning: message [code]`, the line, a caret."""
        out = [f"{self.span}: warning: {self.message} [{self.code}]", *_excerpt(self.span)]
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)


def lint(network, env=None) -> list[NetdslWarning]:
    """The warnings of an elaborated network, one per place in the source, in source order;
    `env` (the loader's ModuleEnv of the file, default the one the network was compiled
    from) adds the checks that read definitions (unused blocks and parameters)."""
    env = env if env is not None else getattr(network, "module", None)
    found = list(_graph_warnings(network))
    if env is not None:
        found.extend(_definition_warnings(env.module))
    seen: set = set()
    out = []
    for w in found:
        key = (w.code, w.span.file, w.span.line, w.span.column)
        if key in seen or _ignored(w, network):
            continue
        seen.add(key)
        out.append(w)
    return sorted(out, key=lambda w: (w.span.file, w.span.line, w.span.column, w.code))


def _ignored(warning: NetdslWarning, network) -> bool:
    line = network.sources.line(warning.span.file, warning.span.line)
    if line is None:
        line = SourceRegistry.line(warning.span.file, warning.span.line) or ""
    for match in _IGNORE.finditer(line):
        codes = match.group(1)
        if codes is None or warning.code in {c.strip() for c in codes.split(",")}:
            return True
    return False


# ---- the elaborated graph --------------------------------------------------------------


def _category(node) -> str:
    spec = CATALOGUE.get(node.op)
    return spec.category if spec is not None else "merge"


def _graph_warnings(network) -> Iterator[NetdslWarning]:
    outputs = {o.node.id for o in network.outputs}

    def only_consumer(node):
        after = network.readers[node.id]
        if len(after) != 1 or node.id in outputs or len(after[0].inputs) != 1:
            return None
        return after[0]

    for node in network.ordered:
        if node.op in _WEIGHTED:
            yield from _linear_stack(node, only_consumer)
            after = only_consumer(node)
            if after is not None and after.op == "bn" and node.value("bias"):
                yield NetdslWarning(
                    "bias-before-bn",
                    f"{node.called_as} has a bias and BatchNorm follows: BatchNorm subtracts "
                    f"each channel's mean, so the bias cancels and never trains "
                    f"({_channels(node):,} parameters)",
                    node.span,
                    hint="write `bias=false` on the layer before `bn`",
                )
        elif node.op == "dropout":
            after = only_consumer(node)
            if after is not None and after.op == "bn":
                yield NetdslWarning(
                    "dropout-before-bn",
                    "dropout right before BatchNorm: BatchNorm learns the statistics of "
                    "dropped-out activations in training and sees others at inference "
                    "(the variance shift, Li et al. 2019)",
                    node.span,
                    hint="move the dropout after the last BatchNorm (before the classifier)",
                )
    main = network.main_output.node
    if main.op == "softmax":
        yield NetdslWarning(
            "softmax-output",
            "the network ends in softmax, and cross-entropy applies softmax itself "
            "(nn.CrossEntropyLoss, Keras from_logits=True): train.py takes the log of these "
            "probabilities instead, which underflows where log-softmax of logits does not",
            main.span,
            hint="end in logits (drop `softmax`) and apply softmax when you read predictions",
        )


def _channels(node) -> int:
    return int(node.shape[0].value) if node.shape else 0


def _linear_stack(first, only_consumer) -> Iterator[NetdslWarning]:
    """`conv3 64 + conv3 64`: the second layer reads a linear map of the first's input, so
    the two compose into one linear layer (with more parameters and a rank limit)."""
    node = first
    while (node := only_consumer(node)) is not None:
        if node.op in _WEIGHTED:
            if _designed_linear(first, node):
                return
            if node.span == first.span and _repeated(first, node):  # `[conv3 c]*n`
                what = f"each {node.called_as} of this repeat follows the one before"
            elif node.span == first.span:  # a recursive block's calls
                what = f"{node.called_as} follows another {first.called_as} of this expression"
            else:
                where = f" (line {first.span.line})" if first.span.line != node.span.line else ""
                what = f"{node.called_as} follows {first.called_as}{where}"
            yield NetdslWarning(
                "linear-stack",
                f"{what} with no nonlinearity between them: two linear layers compose into "
                "one linear map",
                node.span,
                hint="add an activation between them (e.g. `+ relu`, or `act=relu` on the "
                "first layer)",
            )
            return
        if node.op not in _LINEAR:
            return


def _repeated(first, second) -> bool:
    """Whether two layers are consecutive iterations of one repeat."""
    a, b = first.scope, second.scope
    return a.kind == b.kind == "iteration" and a.parent is b.parent


def _designed_linear(first, second) -> bool:
    """Linear stacks that papers build on purpose: a depthwise conv and the 1x1 conv after
    it (the separable convolution, Xception's and ShuffleNet's, with no ReLU between), and
    a linear bottleneck (MobileNetV2): one block ends in a projection that the next block
    expands. A block with a nonlinearity inside that begins or ends such a stack chose to."""
    if _depthwise(first) and _pointwise(second):
        return True
    for inner, outer in ((first, second), (second, first)):
        block = _block_of(inner)
        if block is not None and not _within(outer.scope, block):
            if any(_category(n) in _NONLINEAR_CATEGORIES for n in block.nodes()):
                return True
    return False


def _depthwise(node) -> bool:
    return node.op == "dwconv" or (
        node.op == "conv" and node.value("g") == node.value("in_channels") != 1
    )


def _pointwise(node) -> bool:
    return node.op == "pointwise_fc" or (node.op == "conv" and node.value("k") in (1, (1, 1)))


def _block_of(node):
    scope = node.scope
    while scope is not None and scope.kind != "block":
        scope = scope.parent
    return scope


def _within(scope, ancestor) -> bool:
    while scope is not None:
        if scope is ancestor:
            return True
        scope = scope.parent
    return False


# ---- the file's definitions ------------------------------------------------------------


def _definition_warnings(module: ast.Module) -> Iterator[NetdslWarning]:
    yield from _unused_params(module)
    if not module.networks:
        return  # a library: its blocks are for other files
    defined = {b.name: b for b in module.blocks}
    reached: set[str] = set()
    pending = [n for n in module.networks]
    pending += [f for f in module.functions]
    while pending:
        definition = pending.pop()
        for name in _names(definition):
            if name in defined and name not in reached:
                reached.add(name)
                pending.append(defined[name])
    for block in module.blocks:
        if block.name not in reached:
            yield NetdslWarning(
                "unused-block",
                f"block '{block.name}' is defined but no network of this file calls it",
                block.name_span or block.span,
                hint="remove it, or move it to a file that other files `use`",
            )


def _unused_params(module: ast.Module) -> Iterator[NetdslWarning]:
    for definition in (*module.blocks, *module.functions, *module.networks):
        read = set(_names(definition))
        for param in definition.params:
            if param.name not in read:
                kind = "network" if isinstance(definition, ast.NetworkDef) else "block"
                kind = "function" if isinstance(definition, ast.FunctionDef) else kind
                yield NetdslWarning(
                    "unused-param",
                    f"parameter '{param.name}' of {kind} '{definition.name}' is never read",
                    param.span,
                    hint=f"use it in the {kind}'s body, or remove it",
                )


def _names(node) -> Iterator[str]:
    """Every name an AST node reads: names, called names, attribute bases, in defaults."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
            continue
        if not isinstance(item, ast.Node):
            continue
        if isinstance(item, ast.Name):
            yield item.id
        elif isinstance(item, ast.Call):
            yield item.name
        elif isinstance(item, ast.Defaults):
            yield item.layer
        for field in type(item).__record_fields__:
            if field == "span":
                continue
            value = getattr(item, field)
            if field == "params":  # a parameter's name is not a read; its default may read
                value = tuple(p.default for p in value if p.default is not None)
            stack.append(value)
